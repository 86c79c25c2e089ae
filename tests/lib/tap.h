/* tap.h — minimal TAP producer for the C tests (header-only).
 *
 *   tap_plan(n); ok(cond, "name %d", i); is_int(got, want, "name");
 *   is_str(got, want, "name"); return tap_done();
 */
#ifndef LATTICE_TAP_H
#define LATTICE_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A test program made of several files defines TAP_SHARED in each, and
 * TAP_MAIN too in the one with main(), so they count on one set of numbers. */
#if defined(TAP_SHARED) && defined(TAP_MAIN)
int tap_n_, tap_failed_, tap_planned_;
#elif defined(TAP_SHARED)
extern int tap_n_, tap_failed_, tap_planned_;
#else
static int tap_n_, tap_failed_, tap_planned_;
#endif

static inline void tap_plan(int n)
{
	tap_planned_ = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static inline int tap_ok_(int cond, const char *fmt, va_list ap)
{
	tap_n_++;
	if (!cond)
		tap_failed_++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n_);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

__attribute__((format(printf, 2, 3))) static inline int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = tap_ok_(cond, fmt, ap);
	va_end(ap);
	return r;
}

#define is_int(got, want, ...)                                                                    \
	do {                                                                                      \
		long long g_ = (long long)(got), w_ = (long long)(want);                          \
		if (!ok(g_ == w_, __VA_ARGS__))                                                   \
			tap_diag("  got %lld, want %lld (%s:%d)", g_, w_, __FILE__, __LINE__);    \
	} while (0)

#define is_str(got, want, ...)                                                                    \
	do {                                                                                      \
		const char *g_ = (got), *w_ = (want);                                             \
		int eq_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_;                            \
		if (!ok(eq_, __VA_ARGS__))                                                        \
			tap_diag("  got '%s', want '%s' (%s:%d)", g_ ? g_ : "(null)",             \
				 w_ ? w_ : "(null)", __FILE__, __LINE__);                         \
	} while (0)

/* Exit status: 0 only when every planned test ran and passed. */
static inline int tap_done(void)
{
	if (tap_planned_ != tap_n_) {
		tap_diag("planned %d tests but ran %d", tap_planned_, tap_n_);
		return 1;
	}
	return tap_failed_ ? 1 : 0;
}

#endif
