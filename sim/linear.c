/* linear — see linear.h. */
#include "linear.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One call or return of an operation, in a doubly linked list in time order.
 * Linearizing an operation lifts its call and its return out of the list;
 * backtracking puts them back where they were. */
struct ent {
	size_t op; /* index into the kept operations */
	bool call;
	int64_t t;
	struct ent *prev, *next, *match; /* match: a call's return */
};

static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	/* calls before returns at one ms: the two count as concurrent (the clock
	 * cannot order them, and a false alarm is worse than a missed one) */
	if (x->call != y->call)
		return x->call ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op;
}

static void lift(struct ent *e)
{
	e->prev->next = e->next;
	if (e->next)
		e->next->prev = e->prev;
	struct ent *m = e->match;
	m->prev->next = m->next;
	if (m->next)
		m->next->prev = m->prev;
}

static void unlift(struct ent *e)
{
	struct ent *m = e->match;
	m->prev->next = m;
	if (m->next)
		m->next->prev = m;
	e->prev->next = e;
	if (e->next)
		e->next->prev = e;
}

/* The memoization set: configurations (bitset of linearized ops, state) seen.
 * Open addressing over indexes into an arena of (words + 1) uint64 each. */
struct memo {
	size_t words;
	uint64_t *arena;
	size_t n, arena_cap;
	uint32_t *slots; /* 0: empty, else arena index + 1 */
	size_t cap;      /* power of two */
};

static uint64_t memo_hash(const uint64_t *bits, size_t words, int64_t state)
{
	uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)state;
	for (size_t i = 0; i < words; i++) {
		h ^= bits[i];
		h *= 0xff51afd7ed558ccdu;
		h ^= h >> 33;
	}
	h *= 0xc4ceb9fe1a85ec53u;
	return h ^ (h >> 29);
}

static int memo_grow(struct memo *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 1024;
	uint32_t *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -1;
	size_t w = m->words + 1;
	for (size_t i = 0; i < m->n; i++) {
		const uint64_t *k = m->arena + i * w;
		size_t j = memo_hash(k, m->words, (int64_t)k[m->words]) & (ncap - 1);
		while (ns[j])
			j = (j + 1) & (ncap - 1);
		ns[j] = (uint32_t)(i + 1);
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	return 0;
}

/* Adds (bits, state): 1 when new, 0 when already there, -1 out of memory,
 * -2 when the set would pass LINEAR_MAX_MEMO_BYTES. */
static int memo_add(struct memo *m, const uint64_t *bits, int64_t state)
{
	size_t w = m->words + 1;
	if ((m->n + 1) * 2 > m->cap && memo_grow(m) != 0)
		return -1;
	size_t j = memo_hash(bits, m->words, state) & (m->cap - 1);
	while (m->slots[j]) {
		const uint64_t *k = m->arena + (m->slots[j] - 1) * w;
		if ((int64_t)k[m->words] == state && memcmp(k, bits, m->words * sizeof(*bits)) == 0)
			return 0;
		j = (j + 1) & (m->cap - 1);
	}
	if (m->n == m->arena_cap) {
		size_t ncap = m->arena_cap ? m->arena_cap * 2 : 1024;
		if (ncap * w * sizeof(uint64_t) + m->cap * 2 * sizeof(uint32_t) > LINEAR_MAX_MEMO_BYTES ||
		    ncap >= UINT32_MAX)
			return -2;
		uint64_t *na = realloc(m->arena, ncap * w * sizeof(uint64_t));
		if (!na)
			return -1;
		m->arena = na;
		m->arena_cap = ncap;
	}
	uint64_t *k = m->arena + m->n * w;
	memcpy(k, bits, m->words * sizeof(*bits));
	k[m->words] = (uint64_t)state;
	m->slots[j] = (uint32_t)(++m->n);
	return 1;
}

struct frame {
	struct ent *e, *w; /* w: the info write linearized just before e, or NULL */
	int64_t state;     /* before them */
};

static bool is_info_write(const struct linear_op *o)
{
	return o->kind == LINEAR_WRITE && o->ret == LINEAR_PENDING;
}

/* An info write of value v that may go now: a call still in the list before
 * its first return (every such call is concurrent with the present point of
 * the search). Any one will do: they differ only in their call times, all past. */
static struct ent *info_write_of(struct ent *head, const struct linear_op *ops, const size_t *keep, int64_t v)
{
	for (struct ent *x = head->next; x && x->call; x = x->next) {
		const struct linear_op *o = &ops[keep[x->op]];
		if (is_info_write(o) && o->value == v)
			return x;
	}
	return NULL;
}

static void bit_set(uint64_t *bits, size_t i, bool on)
{
	if (on)
		bits[i / 64] |= (uint64_t)1 << (i % 64);
	else
		bits[i / 64] &= ~((uint64_t)1 << (i % 64));
}

int linear_check(const struct linear_op *ops, size_t n, int64_t init, uint64_t budget,
		 struct linear_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->result = LINEAR_OK;
	if (budget == 0)
		budget = LINEAR_BUDGET;
	/* A write called after the last read returned can always go after that
	 * read: leave it out (info writes would only widen the search). */
	bool any_read = false;
	int64_t last_read = INT64_MIN;
	for (size_t i = 0; i < n; i++)
		if (ops[i].kind == LINEAR_READ) {
			any_read = true;
			if (ops[i].ret > last_read)
				last_read = ops[i].ret;
		}
	if (!any_read)
		return 0;

	size_t *keep = malloc(n * sizeof(*keep));
	struct ent *ents = calloc(2 * n + 1, sizeof(*ents));
	struct frame *stack = malloc(n * sizeof(*stack));
	size_t m = 0;
	int rc = -1;
	struct memo memo = {0};
	uint64_t *bits = NULL;
	if (!keep || !ents || !stack)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (ops[i].kind == LINEAR_READ || ops[i].call <= last_read)
			keep[m++] = i;
	memo.words = (m + 63) / 64;
	if (!(bits = calloc(memo.words ? memo.words : 1, sizeof(*bits))))
		goto out;
	struct ent *head = &ents[2 * m], *list = ents;
	for (size_t i = 0; i < m; i++) {
		const struct linear_op *o = &ops[keep[i]];
		list[2 * i] = (struct ent){.op = i, .call = true, .t = o->call};
		list[2 * i + 1] = (struct ent){.op = i, .call = false, .t = o->ret};
	}
	qsort(list, 2 * m, sizeof(*list), ent_cmp);
	/* qsort moved them: find each call's return again */
	struct ent **call_of = calloc(m ? m : 1, sizeof(*call_of));
	if (!call_of)
		goto out;
	for (size_t i = 0; i < 2 * m; i++)
		if (list[i].call)
			call_of[list[i].op] = &list[i];
	for (size_t i = 0; i < 2 * m; i++)
		if (!list[i].call)
			call_of[list[i].op]->match = &list[i];
	free(call_of);
	head->prev = NULL;
	head->next = m ? &list[0] : NULL;
	for (size_t i = 0; i < 2 * m; i++) {
		list[i].prev = i ? &list[i - 1] : head;
		list[i].next = i + 1 < 2 * m ? &list[i + 1] : NULL;
	}

	/* Info writes are never linearized on their own: one that no read sees
	 * changes nothing a read can tell (a blind write overwritten, or never
	 * applied), and one that a read sees can be moved to just before the
	 * first read that sees it (its lin point may be as late as we like). So a
	 * read of v, when the register does not hold v, may take an info write of
	 * v with it. This keeps the search from trying every subset of the
	 * pending info writes at every point. */
	size_t left = 0; /* operations that must be linearized */
	for (size_t i = 0; i < m; i++)
		left += !is_info_write(&ops[keep[i]]);
	int64_t state = init;
	size_t sp = 0;
	long best = -1;
	struct ent *e = head->next;
	while (left > 0) {
		if (++out->steps > budget) {
			out->result = LINEAR_UNKNOWN;
			break;
		}
		if (e->call) {
			const struct linear_op *o = &ops[keep[e->op]];
			if (is_info_write(o)) {
				e = e->next;
				continue;
			}
			struct ent *w = NULL;
			bool legal = o->kind == LINEAR_WRITE || o->value == state;
			if (!legal)
				legal = (w = info_write_of(head, ops, keep, o->value)) != NULL;
			int64_t next = o->value; /* a write's, or what the read saw */
			if (legal) {
				bit_set(bits, e->op, true);
				if (w)
					bit_set(bits, w->op, true);
				int r = memo_add(&memo, bits, next);
				if (r == -1)
					goto out;
				if (r == -2) {
					out->result = LINEAR_UNKNOWN;
					break;
				}
				if (r == 1) {
					stack[sp++] = (struct frame){e, w, state};
					state = next;
					if (w)
						lift(w);
					lift(e);
					left--;
					e = head->next;
					continue;
				}
				bit_set(bits, e->op, false);
				if (w)
					bit_set(bits, w->op, false);
			}
			e = e->next;
		} else if (is_info_write(&ops[keep[e->op]])) {
			e = e->next; /* (only after a read given with ret LINEAR_PENDING) */
		} else {
			/* e's operation returned before it could be linearized here */
			if ((long)sp > best) {
				best = (long)sp;
				out->stuck = keep[e->op];
			}
			if (sp == 0) {
				out->result = LINEAR_VIOLATION;
				break;
			}
			struct frame f = stack[--sp];
			state = f.state;
			bit_set(bits, f.e->op, false);
			unlift(f.e);
			if (f.w) {
				bit_set(bits, f.w->op, false);
				unlift(f.w);
			}
			left++;
			e = f.e->next;
		}
	}
	rc = 0;
out:
	free(memo.arena);
	free(memo.slots);
	free(bits);
	free(stack);
	free(ents);
	free(keep);
	return rc;
}
