/* test_linear — sim/linear.c: the single-register linearizability search. */
#include <stdint.h>
#include <stdlib.h>

#include "linear.h"
#include "tap.h"

#define A LINEAR_ABSENT
#define P LINEAR_PENDING
#define W(v, c, r) {LINEAR_WRITE, (v), (c), (r)}
#define R(v, c, r) {LINEAR_READ, (v), (c), (r)}
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Brute force for small histories: some subset of the info writes happen,
 * in some order that respects real time (x before y when x returned before y
 * was called, at different ms), and every read sees the last write before it. */
static int bf_order(const struct linear_op *h, size_t n, unsigned use, unsigned done, int64_t v)
{
	if ((done & use) == use)
		return 1;
	for (size_t i = 0; i < n; i++) {
		if (!(use >> i & 1) || (done >> i & 1))
			continue;
		int blocked = 0; /* some other pending op returned before i was called */
		for (size_t j = 0; j < n && !blocked; j++)
			blocked = j != i && (use >> j & 1) && !(done >> j & 1) && h[j].ret < h[i].call;
		if (blocked)
			continue;
		if (h[i].kind == LINEAR_READ && h[i].value != v)
			continue;
		if (bf_order(h, n, use, done | 1u << i, h[i].kind == LINEAR_WRITE ? h[i].value : v))
			return 1;
	}
	return 0;
}

static int brute_force(const struct linear_op *h, size_t n)
{
	unsigned must = 0, info = 0;
	for (size_t i = 0; i < n; i++)
		if (h[i].kind == LINEAR_WRITE && h[i].ret == LINEAR_PENDING)
			info |= 1u << i;
		else
			must |= 1u << i;
	/* every subset of the info writes */
	for (unsigned sub = info;; sub = (sub - 1) & info) {
		if (bf_order(h, n, must | sub, 0, LINEAR_ABSENT))
			return 1;
		if (sub == 0)
			return 0;
	}
}

static enum linear_result run(const struct linear_op *ops, size_t n, uint64_t budget, struct linear_outcome *o)
{
	struct linear_outcome tmp;
	if (!o)
		o = &tmp;
	if (linear_check(ops, n, A, budget, o) != 0)
		return (enum linear_result)-1;
	return o->result;
}

int main(void)
{
	tap_plan(25);
	struct linear_outcome o;

	/* sequential */
	struct linear_op seq[] = {W(1, 0, 10), R(1, 20, 30), W(2, 40, 50), R(2, 60, 70)};
	is_int(run(seq, N(seq), 0, NULL), LINEAR_OK, "sequential writes and reads: linearizable");

	/* a stale read: w2 completed before the read started, the read saw w1 */
	struct linear_op stale[] = {W(1, 0, 10), W(2, 20, 30), R(1, 40, 50)};
	is_int(run(stale, N(stale), 0, &o), LINEAR_VIOLATION, "read of a value overwritten before it started: violation");
	is_int(o.stuck, 2, "the stuck operation is the read");

	/* concurrent writes: the read may see either, not a third value */
	struct linear_op conc1[] = {W(1, 0, 100), W(2, 10, 90), R(1, 110, 120)};
	struct linear_op conc2[] = {W(1, 0, 100), W(2, 10, 90), R(2, 110, 120)};
	struct linear_op conc3[] = {W(1, 0, 100), W(2, 10, 90), R(3, 110, 120)};
	is_int(run(conc1, N(conc1), 0, NULL), LINEAR_OK, "concurrent writes, read sees the first: ok");
	is_int(run(conc2, N(conc2), 0, NULL), LINEAR_OK, "concurrent writes, read sees the second: ok");
	is_int(run(conc3, N(conc3), 0, NULL), LINEAR_VIOLATION, "a value nobody wrote: violation");
	/* ... but once a read saw one order, a later read cannot see the other */
	struct linear_op conc4[] = {W(1, 0, 100), W(2, 10, 90), R(2, 110, 120), R(1, 130, 140)};
	is_int(run(conc4, N(conc4), 0, NULL), LINEAR_VIOLATION, "reads disagree on the order of two writes: violation");
	/* a read concurrent with a write may see the old or the new value */
	struct linear_op conc5[] = {W(1, 0, 10), W(2, 20, 60), R(1, 30, 40), R(2, 50, 70)};
	is_int(run(conc5, N(conc5), 0, NULL), LINEAR_OK, "reads during a write see old then new: ok");

	/* an info write may apply late, or never */
	struct linear_op info1[] = {W(1, 0, 10), W(2, 20, P), R(1, 30, 40), R(2, 50, 60)};
	is_int(run(info1, N(info1), 0, NULL), LINEAR_OK, "info write applied after a read that missed it: ok");
	struct linear_op info2[] = {W(1, 0, 10), W(2, 20, P), R(1, 30, 40), R(1, 500, 600)};
	is_int(run(info2, N(info2), 0, NULL), LINEAR_OK, "info write never applied: ok");
	struct linear_op info3[] = {W(1, 0, 10), W(2, 20, P), R(2, 30, 40), R(1, 50, 60)};
	is_int(run(info3, N(info3), 0, NULL), LINEAR_VIOLATION, "info write seen, then unseen: violation");
	struct linear_op info4[] = {R(2, 0, 10), W(2, 20, P)};
	is_int(run(info4, N(info4), 0, NULL), LINEAR_VIOLATION, "info write seen before it was called: violation");

	/* absent: the initial value, and after a delete */
	struct linear_op del1[] = {R(A, 0, 5), W(5, 10, 20), W(A, 30, 40), R(A, 50, 60)};
	is_int(run(del1, N(del1), 0, NULL), LINEAR_OK, "absent before create and after delete: ok");
	struct linear_op del2[] = {W(5, 10, 20), W(A, 30, 40), R(5, 50, 60)};
	is_int(run(del2, N(del2), 0, &o), LINEAR_VIOLATION, "read after a completed delete sees the actor: violation");
	is_int(o.stuck, 2, "the stuck operation is the read");

	/* one ms cannot order a return and a call */
	struct linear_op tie[] = {W(1, 0, 10), R(A, 10, 20)};
	is_int(run(tie, N(tie), 0, NULL), LINEAR_OK, "a return and a call at the same ms are concurrent");
	struct linear_op notie[] = {W(1, 0, 10), R(A, 11, 20)};
	is_int(run(notie, N(notie), 0, NULL), LINEAR_VIOLATION, "... one ms later they are not");

	/* the budget: 30 concurrent writes, then reads no order explains (1, 2,
	 * 1): the search must try every subset of the writes before giving up */
	struct linear_op big[33];
	for (int i = 0; i < 30; i++)
		big[i] = (struct linear_op)W(i + 1, i, 1000);
	big[30] = (struct linear_op)R(1, 1100, 1110);
	big[31] = (struct linear_op)R(2, 1120, 1130);
	big[32] = (struct linear_op)R(1, 1140, 1150);
	is_int(run(big, N(big), 5000, &o), LINEAR_UNKNOWN, "a search past its budget is unknown, not a violation");
	ok(o.steps <= 5001, "it stopped at its budget (%llu steps)", (unsigned long long)o.steps);
	/* many info writes do not make it hard: a read can only take one with it */
	for (int i = 0; i < 30; i++)
		big[i] = (struct linear_op)W(i + 1, i, P);
	is_int(run(big, N(big), 5000, &o), LINEAR_VIOLATION, "30 pending info writes, reads 1, 2, 1: a violation, found");
	ok(o.steps < 5000, "... within the budget (%llu steps)", (unsigned long long)o.steps);
	big[32] = (struct linear_op)R(3, 1140, 1150);
	is_int(run(big, N(big), 5000, &o), LINEAR_OK, "... and reads 1, 2, 3 are fine");

	/* random linearizable histories: each op takes effect at a random point
	 * inside its interval; reads return the value at that point */
	srand(7);
	int bad = 0, caught = 0;
	for (int round = 0; round < 200; round++) {
		enum { K = 24 };
		struct linear_op h[K];
		int64_t at[K];
		for (int i = 0; i < K; i++) {
			int64_t c = rand() % 400, len = 1 + rand() % 60;
			h[i].call = c;
			h[i].ret = c + len;
			at[i] = c + rand() % len; /* distinct-enough effect points */
			at[i] = at[i] * K + i;
			h[i].kind = rand() % 3 == 0 ? LINEAR_WRITE : LINEAR_READ;
			h[i].value = rand() % 4 == 0 ? A : rand() % 5;
			if (h[i].kind == LINEAR_WRITE && rand() % 4 == 0)
				h[i].ret = P; /* info: it still took effect at at[i] */
		}
		/* replay in effect order to fill in what each read returned */
		int order[K];
		for (int i = 0; i < K; i++)
			order[i] = i;
		for (int i = 1; i < K; i++)
			for (int j = i; j > 0 && at[order[j - 1]] > at[order[j]]; j--) {
				int t = order[j];
				order[j] = order[j - 1];
				order[j - 1] = t;
			}
		int64_t v = A;
		for (int i = 0; i < K; i++) {
			struct linear_op *x = &h[order[i]];
			if (x->kind == LINEAR_WRITE)
				v = x->value;
			else
				x->value = v;
		}
		if (run(h, K, 0, NULL) != LINEAR_OK)
			bad++;
		/* a read of a value no write wrote is always caught */
		for (int i = 0; i < K; i++)
			if (h[i].kind == LINEAR_READ) {
				h[i].value = 99;
				caught += run(h, K, 0, NULL) == LINEAR_VIOLATION;
				break;
			}
	}
	is_int(bad, 0, "200 random linearizable histories pass");
	/* small random histories, any verdict: the same as the brute force's */
	int differ = 0, viol = 0;
	for (int round = 0; round < 3000; round++) {
		enum { K = 7 };
		struct linear_op h[K];
		for (int i = 0; i < K; i++) {
			int64_t c = rand() % 40, len = 1 + rand() % 15;
			h[i] = (struct linear_op){rand() % 3 ? LINEAR_WRITE : LINEAR_READ, rand() % 4 == 0 ? A : rand() % 3,
						  c, c + len};
			if (h[i].kind == LINEAR_WRITE && rand() % 3 == 0)
				h[i].ret = P;
		}
		enum linear_result r = run(h, K, 0, NULL);
		int want = brute_force(h, K);
		viol += !want;
		if ((r == LINEAR_OK) != want || r == LINEAR_UNKNOWN) {
			if (differ++ < 3)
				for (int i = 0; i < K; i++)
					tap_diag("  %s %lld [%lld, %lld]", h[i].kind == LINEAR_WRITE ? "w" : "r",
						 (long long)h[i].value, (long long)h[i].call, (long long)h[i].ret);
		}
	}
	is_int(differ, 0, "3000 small random histories: the search agrees with a brute force (%d not linearizable)",
	       viol);
	ok(caught >= 190, "a read of a value never written is caught (%d of ~200)", caught);
	return tap_done();
}
