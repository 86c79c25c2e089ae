/* workq — a few threads that run jobs which may block for long (the REST API's
 * PostgreSQL reads), so the HTTP workers never wait on them: a worker hands the
 * job over, suspends its request and serves others; the job resumes it. Jobs
 * run in the order they came, each on whichever thread is free. */
#ifndef LATTICE_WORKQ_H
#define LATTICE_WORKQ_H

#include <stddef.h>
#include <stdint.h>

struct workq;

/* A job; owned by the submitter, who must keep it alive until fn has run.
 * fn runs once, on a workq thread; the job may be freed from within fn (the
 * queue touches it no more once fn is called). */
struct workq_job {
	void (*fn)(struct workq_job *j);
	struct workq_job *next; /* the queue's */
	int64_t queued_ms;      /* the queue's: when submitted (monotonic) */
};

struct workq_stats {
	uint64_t waiting;  /* jobs queued, not yet started */
	uint64_t running;  /* jobs being run now */
	uint64_t done;     /* jobs run since the start */
	uint64_t oldest_wait_ms; /* how long the longest-waiting queued job has waited (0: none) */
};

/* Starts threads threads (1..256). Returns 0 and *out, or -1 with a message. */
int workq_start(struct workq **out, unsigned threads, char *err, size_t errlen);
/* Queues j. Returns 0, or -1 once workq_stop has begun (j is not run). */
int workq_submit(struct workq *q, struct workq_job *j);
void workq_get_stats(struct workq *q, struct workq_stats *out);
/* Refuses new jobs from now on, runs those queued and joins the threads.
 * Waits for jobs that are running: their own timeouts bound it. */
void workq_stop(struct workq *q);
/* Frees a stopped q (NULL: a no-op). */
void workq_free(struct workq *q);

#endif
