/* linear — is a single-register history linearizable? (docs/chaos.md,
 * `stale_read`). The register holds an integer or "absent"; operations are
 * blind writes and reads, each with its call and return time. The search is
 * Wing & Gong's, with Lowe's memoization (a set of the (linearized ops, state)
 * configurations already explored), as Knossos and Porcupine do it: try to
 * linearize a pending call next, backtrack when an operation's return is
 * reached before it could be linearized.
 *
 * A write whose outcome is unknown (an `info` completion) has ret
 * LINEAR_PENDING: it may take effect at any point after its call, or never.
 * Only reads whose value is known (ok) are given; a write that certainly did
 * not happen (fail) is not given. Pure, no I/O, any thread. */
#ifndef LATTICE_LINEAR_H
#define LATTICE_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#define LINEAR_ABSENT INT64_MIN       /* the register's "no such actor" value */
#define LINEAR_PENDING INT64_MAX      /* ret of an operation that never returned */

enum linear_kind { LINEAR_WRITE, LINEAR_READ };

struct linear_op {
	enum linear_kind kind;
	int64_t value; /* written, or read; LINEAR_ABSENT for absent */
	int64_t call;  /* times on one clock; an operation that returned at the very
			* ms another was called is taken as concurrent with it */
	int64_t ret;   /* >= call, or LINEAR_PENDING */
};

enum linear_result {
	LINEAR_OK,        /* a linearization exists */
	LINEAR_VIOLATION, /* none exists */
	LINEAR_UNKNOWN,   /* the search ran out of its budget before deciding */
};

struct linear_outcome {
	enum linear_result result;
	/* LINEAR_VIOLATION: the index (in ops) of the operation the deepest
	 * attempt could not linearize before its return — the stale read, usually */
	size_t stuck;
	uint64_t steps; /* search steps taken */
};

/* Checks the n operations at ops (borrowed) from the initial value init.
 * budget bounds the search steps (0: a default of LINEAR_BUDGET); the
 * memoization set is bounded too (LINEAR_MAX_MEMO_BYTES), and either limit
 * gives LINEAR_UNKNOWN. Returns 0 with *out set, or -1 when out of memory. */
#define LINEAR_BUDGET 2000000u
#define LINEAR_MAX_MEMO_BYTES ((size_t)256 << 20)
int linear_check(const struct linear_op *ops, size_t n, int64_t init, uint64_t budget,
		 struct linear_outcome *out);

#endif
