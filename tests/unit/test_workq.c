/* test_workq — the read threads' queue: bounds on the thread count, FIFO order
 * on one thread, as many jobs at once as threads and no more (the rest wait,
 * counted), a job that frees itself, a stop that runs every queued job first,
 * and a submit after the stop began refused. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "workq.h"

struct tjob {
	struct workq_job job; /* first: the job is the tjob */
	int n;
	int *order;
	atomic_int *pos;
};

static void record(struct workq_job *j)
{
	struct tjob *t = (struct tjob *)j;
	t->order[atomic_fetch_add(t->pos, 1)] = t->n;
}

/* Jobs that hold until the gate opens, counting how many run at once. */
static pthread_mutex_t gmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gcv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int inside, inside_max;
static atomic_int finished;

static void held(struct workq_job *j)
{
	(void)j;
	pthread_mutex_lock(&gmu);
	inside++;
	if (inside > inside_max)
		inside_max = inside;
	pthread_cond_broadcast(&gcv);
	while (!gate_open)
		pthread_cond_wait(&gcv, &gmu);
	inside--;
	pthread_mutex_unlock(&gmu);
	atomic_fetch_add(&finished, 1);
}

static void self_free(struct workq_job *j)
{
	free(j);
	atomic_fetch_add(&finished, 1);
}

static struct workq *late_q;
static atomic_int late_rc = 99;
static struct workq_job late_job = {.fn = self_free};

static void submits_late(struct workq_job *j)
{
	(void)j;
	usleep(200 * 1000); /* workq_stop has begun by now */
	atomic_store(&late_rc, workq_submit(late_q, &late_job));
}

/* Waits (up to 10 s, a hang guard) until running == want. */
static bool wait_running(struct workq *q, uint64_t want)
{
	for (int i = 0; i < 10000; i++) {
		struct workq_stats st;
		workq_get_stats(q, &st);
		if (st.running == want)
			return true;
		usleep(1000);
	}
	return false;
}

int main(void)
{
	tap_plan(13);
	char err[256];
	struct workq *q = NULL;
	ok(workq_start(&q, 0, err, sizeof(err)) == -1 && q == NULL, "0 threads refused: %s", err);
	ok(workq_start(&q, 257, err, sizeof(err)) == -1 && q == NULL, "257 threads refused: %s", err);

	/* One thread: in the order submitted. */
	enum { N = 200 };
	static struct tjob jobs[N];
	static int order[N];
	atomic_int pos = 0;
	ok(workq_start(&q, 1, err, sizeof(err)) == 0, "1 thread starts");
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct tjob){.job.fn = record, .n = i, .order = order, .pos = &pos};
		workq_submit(q, &jobs[i].job);
	}
	workq_stop(q);
	workq_free(q);
	bool fifo = atomic_load(&pos) == N;
	for (int i = 0; fifo && i < N; i++)
		fifo = order[i] == i;
	ok(fifo, "one thread runs %d jobs in the order they came", N);

	/* Four threads: four held jobs at once, the fifth waits. */
	ok(workq_start(&q, 4, err, sizeof(err)) == 0, "4 threads start");
	static struct workq_job hj[6];
	for (int i = 0; i < 6; i++) {
		hj[i].fn = held;
		workq_submit(q, &hj[i]);
	}
	bool four = wait_running(q, 4);
	usleep(50 * 1000); /* a fifth would have started by now */
	struct workq_stats st;
	workq_get_stats(q, &st);
	ok(four && st.running == 4 && st.waiting == 2, "4 run at once, 2 wait (running %llu, waiting %llu)",
	   (unsigned long long)st.running, (unsigned long long)st.waiting);
	pthread_mutex_lock(&gmu);
	int most = inside_max;
	gate_open = true;
	pthread_cond_broadcast(&gcv);
	pthread_mutex_unlock(&gmu);
	ok(most == 4, "never more jobs inside than threads (%d)", most);

	for (int i = 0; i < 10000 && atomic_load(&finished) < 6; i++)
		usleep(1000);
	ok(atomic_load(&finished) == 6, "all 6 ran once the gate opened");

	/* A job that frees itself; a stop runs what is still queued. */
	pthread_mutex_lock(&gmu);
	gate_open = false;
	pthread_mutex_unlock(&gmu);
	inside_max = 0;
	atomic_store(&finished, 0);
	for (int i = 0; i < 4; i++) {
		hj[i].fn = held;
		workq_submit(q, &hj[i]);
	}
	wait_running(q, 4);
	for (int i = 0; i < 100; i++) {
		struct workq_job *j = malloc(sizeof(*j));
		j->fn = self_free;
		workq_submit(q, j);
	}
	usleep(150 * 1000);
	workq_get_stats(q, &st);
	ok(st.waiting == 100 && st.oldest_wait_ms >= 150 && st.oldest_wait_ms < 60000,
	   "100 queued behind 4 held (%llu), the oldest waiting %llu ms", (unsigned long long)st.waiting,
	   (unsigned long long)st.oldest_wait_ms);
	pthread_mutex_lock(&gmu);
	gate_open = true;
	pthread_cond_broadcast(&gcv);
	pthread_mutex_unlock(&gmu);
	workq_stop(q);
	workq_stop(q); /* a second stop is harmless */
	workq_free(q);
	ok(atomic_load(&finished) == 104, "the stop ran every queued job first (%d of 104)", atomic_load(&finished));

	/* A submit once the stop has begun is refused (the job is not run). */
	ok(workq_start(&late_q, 2, err, sizeof(err)) == 0, "2 threads start");
	static struct workq_job sj = {.fn = submits_late};
	workq_submit(late_q, &sj);
	wait_running(late_q, 1);
	atomic_store(&finished, 0);
	workq_stop(late_q);
	workq_free(late_q);
	ok(atomic_load(&late_rc) == -1, "a submit during the stop returns -1 (%d)", atomic_load(&late_rc));
	ok(atomic_load(&finished) == 0, "and its job never ran");
	workq_free(NULL);
	return tap_done();
}
