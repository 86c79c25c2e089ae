/* test_aiodefer — the process's syscall() (aiodefer.c): other calls go to
 * glibc's; io_destroy runs on the caller's thread until aiodefer_enable, then
 * returns at once and the context is still destroyed, by the reaper thread (a
 * destroyed context answers io_getevents with EINVAL). */
#include "aiodefer.h"
#include "tap.h"

#include <errno.h>
#include <linux/aio_abi.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Does the kernel still know ctx? */
static bool alive(aio_context_t ctx)
{
	struct io_event ev;
	struct timespec zero = {0, 0};
	return syscall(SYS_io_getevents, ctx, 0, 1, &ev, &zero) >= 0 || errno != EINVAL;
}

static aio_context_t setup(void)
{
	aio_context_t ctx = 0;
	if (syscall(SYS_io_setup, 64, &ctx) != 0)
		return 0;
	return ctx;
}

int main(void)
{
	tap_plan(9);
	is_int(syscall(SYS_getpid), getpid(), "other calls reach the kernel (getpid)");
	aio_context_t c1 = setup();
	ok(c1 != 0 && alive(c1), "io_setup made a context");
	is_int(syscall(SYS_io_destroy, c1), 0, "before aiodefer_enable: io_destroy on this thread");
	ok(!alive(c1) && aiodefer_deferred() == 0, "... the context is gone at once, nothing deferred");

	is_int(aiodefer_enable(), 0, "aiodefer_enable");
	aio_context_t c2 = setup();
	ok(c2 != 0 && alive(c2), "another context");
	is_int(syscall(SYS_io_destroy, c2), 0, "after it, io_destroy returns 0");
	is_int(aiodefer_deferred(), 1, "... having handed the context to the reaper");
	/* The reaper destroys it in the background: wait for it (a hang guard only). */
	for (int i = 0; i < 1000 && alive(c2); i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	ok(!alive(c2), "... which destroys it");
	return tap_done();
}
