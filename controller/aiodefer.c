/* dlsym(RTLD_NEXT): glibc's own syscall(). */
#define _GNU_SOURCE
#include "aiodefer.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*aiodefer_syscall_fn)(long, ...);

#define AIODEFER_QUEUE 256

static _Atomic(aiodefer_syscall_fn) real_syscall;
static atomic_bool enabled;
static atomic_uint_fast64_t deferred;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long queue[AIODEFER_QUEUE];
static unsigned qhead, qlen;

static aiodefer_syscall_fn glibc_syscall(void)
{
	aiodefer_syscall_fn f = atomic_load(&real_syscall);
	if (f == NULL) {
		f = (aiodefer_syscall_fn)dlsym(RTLD_NEXT, "syscall");
		atomic_store(&real_syscall, f);
	}
	return f;
}

static void *reaper(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&mu);
		while (qlen == 0)
			pthread_cond_wait(&cv, &mu);
		long ctx = queue[qhead];
		qhead = (qhead + 1) % AIODEFER_QUEUE;
		qlen--;
		pthread_mutex_unlock(&mu);
		glibc_syscall()(SYS_io_destroy, ctx);
	}
	return NULL;
}

int aiodefer_enable(void)
{
	if (glibc_syscall() == NULL)
		return -1;
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &a, reaper, NULL);
	pthread_attr_destroy(&a);
	if (rc != 0)
		return -1;
	atomic_store(&enabled, true);
	return 0;
}

uint64_t aiodefer_deferred(void)
{
	return atomic_load(&deferred);
}

/* Queues ctx for the reaper; false when the queue is full (destroy it here). */
static bool defer(long ctx)
{
	pthread_mutex_lock(&mu);
	bool ok = qlen < AIODEFER_QUEUE;
	if (ok) {
		queue[(qhead + qlen) % AIODEFER_QUEUE] = ctx;
		qlen++;
		pthread_cond_signal(&cv);
	}
	pthread_mutex_unlock(&mu);
	if (ok)
		atomic_fetch_add(&deferred, 1);
	return ok;
}

long syscall(long number, ...)
{
	va_list ap;
	va_start(ap, number);
	long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
	long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
	va_end(ap);
	if (number == SYS_io_destroy && atomic_load(&enabled) && defer(a1))
		return 0;
	aiodefer_syscall_fn f = glibc_syscall();
	return f(number, a1, a2, a3, a4, a5, a6);
}
