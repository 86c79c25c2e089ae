/* tswait — the absolute deadline pthread_cond_timedwait wants, from a wait in
 * milliseconds (negative: none) on the clock the condition variable uses. */
#ifndef LATTICE_TSWAIT_H
#define LATTICE_TSWAIT_H

#include <stdint.h>
#include <time.h>

/* t moved on by ms (>= 0). */
static inline struct timespec tswait_add(struct timespec t, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	t.tv_sec += (time_t)(ms / 1000);
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* Now on clk, plus ms. */
static inline struct timespec tswait_after(clockid_t clk, int64_t ms)
{
	struct timespec t;
	clock_gettime(clk, &t);
	return tswait_add(t, ms);
}

#endif
