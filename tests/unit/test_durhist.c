/* test_durhist — controller/durhist.c: observations land in the first bucket
 * whose bound holds them (bounds inclusive), above the last only in count and
 * sum; negative durations count as 0; the two scales' bounds. */
#include "durhist.h"
#include "tap.h"

int main(void)
{
	tap_plan(9);
	struct durhist h;
	durhist_init(&h, DURHIST_SLOW);
	ok(durhist_bound(&h, 0) == 0.01 && durhist_bound(&h, DURHIST_BUCKETS - 1) == 600, "slow: 10 ms .. 600 s");
	durhist_add(&h, 10000); /* 10 ms: on the first bound */
	durhist_add(&h, 10001);
	durhist_add(&h, -5);
	durhist_add(&h, 3600LL * 1000000); /* an hour: past every bound */
	ok(h.bucket[0] == 2, "10 ms and a negative duration fall in the first bucket (bounds inclusive)");
	ok(h.bucket[1] == 1, "10.001 ms in the second");
	uint64_t in = 0;
	for (int i = 0; i < DURHIST_BUCKETS; i++)
		in += h.bucket[i];
	ok(in == 3 && h.count == 4, "an hour is in no bucket, but counted");
	ok(h.sum_us == 10000 + 10001 + 0 + 3600ULL * 1000000, "the sum in microseconds, the negative one as 0");
	struct durhist f;
	durhist_init(&f, DURHIST_FAST);
	ok(durhist_bound(&f, 0) == 0.00001 && durhist_bound(&f, DURHIST_BUCKETS - 1) == 1, "fast: 10 µs .. 1 s");
	durhist_add(&f, 7);
	durhist_add(&f, 600);
	ok(f.bucket[0] == 1, "7 µs in the first fast bucket");
	ok(f.bucket[6] == 1, "600 µs in (0.5 ms, 1 ms]");
	durhist_init(&f, DURHIST_FAST);
	ok(f.count == 0 && f.sum_us == 0 && f.bucket[6] == 0, "init empties it");
	return tap_done();
}
