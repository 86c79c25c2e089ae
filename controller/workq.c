/* workq — see workq.h. One mutex and condition guard a FIFO list; jobs are
 * few (one per suspended request, bounded by the connection limit) and each
 * runs for far longer than the lock is held. */
#include "workq.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct workq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct workq_job *head, *tail;
	bool stopping;
	uint64_t waiting, running, done;
	unsigned nthreads;
	pthread_t threads[];
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *workq_main(void *arg)
{
	struct workq *q = arg;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct workq_job *j = q->head;
		if (j == NULL) {
			if (q->stopping)
				break;
			pthread_cond_wait(&q->cv, &q->mu);
			continue;
		}
		q->head = j->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->waiting--;
		q->running++;
		pthread_mutex_unlock(&q->mu);
		j->fn(j); /* j may be gone after this */
		pthread_mutex_lock(&q->mu);
		q->running--;
		q->done++;
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int workq_start(struct workq **out, unsigned threads, char *err, size_t errlen)
{
	*out = NULL;
	if (threads < 1 || threads > 256) {
		snprintf(err, errlen, "workq: %u threads (1-256)", threads);
		return -1;
	}
	struct workq *q = calloc(1, sizeof(*q) + threads * sizeof(pthread_t));
	if (q == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rc = pthread_mutex_init(&q->mu, NULL);
	if (rc == 0 && (rc = pthread_cond_init(&q->cv, NULL)) != 0)
		pthread_mutex_destroy(&q->mu);
	if (rc != 0) {
		free(q);
		snprintf(err, errlen, "workq: %s", strerror(rc));
		return -1;
	}
	for (unsigned i = 0; i < threads; i++) {
		if ((rc = pthread_create(&q->threads[i], NULL, workq_main, q)) != 0) {
			q->nthreads = i;
			workq_stop(q);
			workq_free(q);
			snprintf(err, errlen, "cannot start the PostgreSQL read threads: %s", strerror(rc));
			return -1;
		}
	}
	q->nthreads = threads;
	*out = q;
	return 0;
}

int workq_submit(struct workq *q, struct workq_job *j)
{
	pthread_mutex_lock(&q->mu);
	if (q->stopping) {
		pthread_mutex_unlock(&q->mu);
		return -1;
	}
	j->next = NULL;
	j->queued_ms = mono_ms();
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->waiting++;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

void workq_get_stats(struct workq *q, struct workq_stats *out)
{
	pthread_mutex_lock(&q->mu);
	out->waiting = q->waiting;
	out->running = q->running;
	out->done = q->done;
	int64_t now = mono_ms();
	/* FIFO: the head has waited longest. */
	out->oldest_wait_ms = q->head && now > q->head->queued_ms ? (uint64_t)(now - q->head->queued_ms) : 0;
	pthread_mutex_unlock(&q->mu);
}

void workq_stop(struct workq *q)
{
	pthread_mutex_lock(&q->mu);
	bool joined = q->stopping;
	q->stopping = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	if (joined)
		return;
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
}

void workq_free(struct workq *q)
{
	if (q == NULL)
		return;
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}
