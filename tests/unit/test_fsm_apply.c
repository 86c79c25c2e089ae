/* test_fsm_apply — fsm.c's apply: what a replica does with a committed entry it
 * cannot apply as the others do. A malformed entry is skipped (every replica
 * reads the same bytes the same way: counted, an empty projection batch); an
 * entry of a newer format version or op, or an allocation that fails while
 * decoding or applying, stops the replica with a log line (it must not refuse or
 * skip what the others applied; the restart replays the entry).
 *
 * Stops are watched from a forked child: its exit and its stderr. Allocations
 * fail here above TEST_ALLOC_MAX (ASan's max_allocation_size_mb, or malloc
 * wrappers in builds without ASan), which makes the large allocations of a large
 * entry fail and nothing else. */
#include <errno.h>
#include <raft.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "entry.h"
#include "fsm.h"
#include "model.h"
#include "proj.h"
#include "tap.h"

#define TEST_ALLOC_MAX ((size_t)8 << 20)

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#endif

#ifdef TEST_ASAN
/* Read by ASan at start-up; ASAN_OPTIONS from the environment add to it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=8";
}
#else
/* glibc lets a program replace malloc; these hand everything to glibc's own
 * allocator except what is above the limit. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

void *malloc(size_t n)
{
	if (n > TEST_ALLOC_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	if (size != 0 && n > TEST_ALLOC_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	if (n > TEST_ALLOC_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, n);
}
#endif

/* A replica's apply with no raft instance around it: fsm_apply reads only
 * raft_last_applied(). */
struct replica {
	struct raft raft;
	struct model model;
	struct fsm fsm;
	struct raft_fsm rf;
	struct entry *proposed; /* what fsm.proposed hands back (the leader's entry) */
};

static struct entry *proposed_entry(void *arg, const void *base)
{
	(void)base;
	return ((struct replica *)arg)->proposed;
}

static struct replica *replica_new(void)
{
	struct replica *r = calloc(1, sizeof(*r));
	model_init(&r->model);
	r->fsm.raft = &r->raft;
	r->fsm.model = &r->model;
	r->fsm.proposed = proposed_entry;
	r->fsm.proposed_arg = r;
	fsm_init(&r->rf, &r->fsm);
	return r;
}

static void replica_free(struct replica *r)
{
	struct proj_batch *b = r->fsm.pending_head;
	while (b) {
		struct proj_batch *next = b->next;
		proj_batch_free(b);
		b = next;
	}
	model_release(&r->model);
	free(r);
}

/* Applies len bytes as the next log entry; returns fsm_apply's return value and
 * the apply result in *res. */
static int apply_buf(struct replica *r, const void *base, size_t len, struct apply_result *res)
{
	struct raft_buffer rb = {.base = (void *)base, .len = len};
	void *result = NULL;
	int rv = r->rf.apply(&r->rf, &rb, &result);
	if (rv == 0)
		r->raft.last_applied++;
	if (res)
		*res = result ? *(struct apply_result *)result : (struct apply_result){0};
	return rv;
}

/* Text with single quotes for double ones. */
static int apply_text(struct replica *r, const char *text, struct apply_result *res)
{
	char *t = strdup(text);
	for (char *p = t; *p; p++)
		if (*p == '\'')
			*p = '"';
	int rv = apply_buf(r, t, strlen(t), res);
	free(t);
	return rv;
}

/* ---- children ---------------------------------------------------------------- */

struct outcome {
	bool aborted;  /* killed by SIGABRT */
	int status;    /* exit status when it exited */
	char err[8192]; /* its stderr (the start of it) */
};

/* Runs fn(arg) in a child whose stderr is captured; a child that returns exits 0. */
static void run_child(void (*fn)(void *), void *arg, struct outcome *o)
{
	int fds[2];
	memset(o, 0, sizeof(*o));
	o->status = -1;
	if (pipe(fds) != 0)
		return;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 2);
		fn(arg);
		_exit(0); /* no atexit handlers, no leak report: the child's work was a probe */
	}
	close(fds[1]);
	size_t n = 0;
	ssize_t k;
	char sink[4096];
	while ((k = read(fds[0], n < sizeof(o->err) - 1 ? o->err + n : sink,
			 n < sizeof(o->err) - 1 ? sizeof(o->err) - 1 - n : sizeof(sink))) > 0)
		if (n < sizeof(o->err) - 1)
			n += (size_t)k;
	o->err[n] = '\0';
	close(fds[0]);
	int st;
	if (pid > 0 && waitpid(pid, &st, 0) == pid) {
		o->aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
		o->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	}
}

/* ok() that the child stopped (SIGABRT) with a log line holding both fragments. */
static void stopped(const struct outcome *o, const char *a, const char *b, const char *name)
{
	bool said = strstr(o->err, a) != NULL && (b == NULL || strstr(o->err, b) != NULL);
	if (!ok(o->aborted && said, "%s", name))
		tap_diag("  aborted %d, exit status %d, stderr: %.600s", o->aborted, o->status, o->err);
}

static void node_n1(struct replica *r)
{
	struct apply_result res;
	apply_text(r, "{'v':1,'op':'node_put','at':1,'node':{'id':'n1','region':'eu'}}", &res);
}

static void child_apply_text(void *text)
{
	struct replica *r = replica_new();
	node_n1(r);
	struct apply_result res;
	int rv = apply_text(r, text, &res);
	fprintf(stderr, "child: apply returned %d, code %d (%s)\n", rv, (int)res.code, res.message);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_malformed_skipped(void)
{
	struct replica *r = replica_new();
	char dummy;
	r->fsm.store = (struct store *)&dummy; /* only compared with NULL: batches stay queued here */
	node_n1(r);
	char *before = model_snapshot_dump(&r->model, 0, NULL);
	struct apply_result res;
	int rv = apply_text(r, "{'v':1,'op':'node_put','at':2,'node':{'id':7,'region':'eu'}}", &res);
	struct proj_batch *b = r->fsm.pending_tail;
	ok(rv == 0 && res.code == APPLY_INVALID && strstr(res.message, "node.id") != NULL &&
		   r->fsm.undecodable == 1,
	   "malformed entry (valid version): skipped, counted, refused as invalid (%s)", res.message);
	ok(b != NULL && b->index == 2 && b->n == 0 && r->fsm.rows_index == 2,
	   "malformed entry: an empty projection batch at its index, so the projected index passes it");
	rv = apply_text(r, "not JSON at all", &res);
	ok(rv == 0 && res.code == APPLY_INVALID && r->fsm.undecodable == 2 && r->fsm.pending_tail->index == 3,
	   "bytes that are not JSON: skipped the same way");
	char *after = model_snapshot_dump(&r->model, 0, NULL);
	ok(before && after && strcmp(before, after) == 0, "skipped entries leave the model as it was");
	raft_free(before);
	raft_free(after);
	replica_free(r);
}

static void test_newer_format_stops(void)
{
	struct outcome o;
	run_child(child_apply_text, "{'v':5,'op':'node_delete','at':2,'target':'n1'}", &o);
	stopped(&o, "upgrade this replica", "format version 5",
		"an entry of format version 5: the replica stops, saying to upgrade");
	run_child(child_apply_text, "{'v':1,'op':'node_teleport','at':2,'target':'n1'}", &o);
	stopped(&o, "upgrade this replica", "node_teleport",
		"an op this build does not know: the replica stops, saying to upgrade");
}

/* An entry whose "who" is 9 MiB: the JSON parser's buffer for it cannot grow. */
static void child_big_string(void *unused)
{
	(void)unused;
	size_t n = (size_t)9 << 20, cap = n + 256;
	char *t = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED)
		return;
	size_t k = (size_t)snprintf(t, cap, "{\"v\":1,\"op\":\"node_delete\",\"at\":2,\"target\":\"n1\",\"who\":\"");
	memset(t + k, 'x', n);
	k += n;
	k += (size_t)snprintf(t + k, cap - k, "\"}");
	struct replica *r = replica_new();
	node_n1(r);
	struct apply_result res;
	int rv = apply_buf(r, t, k, &res);
	fprintf(stderr, "child: apply returned %d, code %d (%s), %llu undecodable\n", rv, (int)res.code,
		res.message, (unsigned long long)r->fsm.undecodable);
}

static void test_decode_oom_stops(void)
{
	struct outcome o;
	run_child(child_big_string, NULL, &o);
	stopped(&o, "out of memory", "replays",
		"out of memory while decoding an entry: the replica stops (not skipped)");
}

/* The leader's own entry (no decoding): an actor with 2^19 placements, whose
 * placement table (24 bytes each) is above the limit while the entry's own
 * arrays are not. */
static void child_apply_oom(void *unused)
{
	(void)unused;
	struct replica *r = replica_new();
	node_n1(r);
	size_t n = (size_t)1 << 19;
	struct entry *e = calloc(1, sizeof(*e));
	e->op = ENTRY_ACTOR_CREATE;
	e->at_ms = 3;
	e->actor.id = strdup("big");
	e->actor.module = strdup("m");
	e->actor.preferred_region = strdup("");
	e->actor.replicas = (int64_t)n;
	e->placements = calloc(n, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		e->placements[i] = strdup("n1");
	e->nplacements = n;
	r->proposed = e;
	struct apply_result res;
	int rv = apply_buf(r, "(the leader's buffer)", 21, &res);
	fprintf(stderr, "child: apply returned %d, code %d (%s)\n", rv, (int)res.code, res.message);
}

static void test_apply_oom_stops(void)
{
	struct outcome o;
	run_child(child_apply_oom, NULL, &o);
	stopped(&o, "out of memory", "replays",
		"out of memory while applying an entry: the replica stops (not refused with a result code)");
	ok(strstr(o.err, "raft entry 2") != NULL, "the log line names the entry's index");
}

/* The leader path itself: the proposed entry is applied without decoding. */
static void test_proposed_applied(void)
{
	struct replica *r = replica_new();
	node_n1(r);
	struct entry e;
	memset(&e, 0, sizeof(e));
	e.op = ENTRY_NODE_FLAGS;
	e.at_ms = 4;
	e.target = strdup("n1");
	e.flag = 1;
	r->proposed = &e;
	struct apply_result res;
	int rv = apply_buf(r, "not an entry: never decoded", 27, &res);
	const struct model_node *n = model_node_get(&r->model, "n1");
	ok(rv == 0 && res.code == APPLY_OK && n && n->cordoned && r->fsm.applied == 2 && r->fsm.undecodable == 0,
	   "the leader's proposed entry is applied as it is, its buffer not decoded");
	entry_release(&e);
	replica_free(r);
}

int main(void)
{
	tap_plan(10);
	test_malformed_skipped();
	test_newer_format_stops();
	test_decode_oom_stops();
	test_apply_oom_stops();
	test_proposed_applied();
	return tap_done();
}
