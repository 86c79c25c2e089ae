/* latticed — one replica of the lattice control plane.
 *
 * Threads: this one runs the libuv loop (Raft, model, timers); libmicrohttpd runs
 * the API's worker threads; the store runs the PostgreSQL projection writer. */
#include <errno.h>
#include <malloc.h>
#include <nats/nats.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "sse.h"
#include "workq.h"
#include "store.h"

/* From SIGTERM/SIGINT to exit, at most (docs/configuration.md, "Signals"):
 * requests in flight get up to loop.c's grace, the PostgreSQL flush whatever is
 * left, less a little kept for what follows the flush (closing, freeing). */
#define LATTICED_SHUTDOWN_MS 10000
#define LATTICED_SHUTDOWN_TAIL_MS 250

struct lattice {
	struct config cfg;
	struct store *store;
	struct loop loop;
	struct api api;
	struct http *http;
	struct sse *sse;
	uv_signal_t sigterm, sigint;
};

/* The store's writer thread, after each commit. */
static void on_projected(void *arg, uint64_t index)
{
	struct lattice *lt = arg;
	loop_projected(&lt->loop, index);
	sse_notify(lt->sse, index);
}

/* The store asks (on the loop thread, which submits its batches) whether the
 * spool may grow: the disk guard keeps raft's room. */
static bool on_spool_room(void *arg, size_t len, char *why, size_t whylen)
{
	return disk_spool_fits(arg, len, why, whylen);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct lattice *lt = s->data;
	log_info("received %s: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	/* New connections are refused; requests in flight are answered. */
	if (lt->http)
		http_quiesce(lt->http);
	loop_stop(&lt->loop);
	uv_close((uv_handle_t *)&lt->sigterm, NULL);
	uv_close((uv_handle_t *)&lt->sigint, NULL);
	/* The shutdown is bounded (LATTICED_SHUTDOWN_MS): a second SIGTERM or
	 * SIGINT (a terminal's Ctrl-C and a supervisor's TERM, say) must not cut the
	 * PostgreSQL flush short. SIGKILL still ends it at once. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
}

/* Every REST API connection is a file descriptor. Below the connection limit
 * (plus room for Raft's files and the PostgreSQL connections) accept() would
 * fail first, and so could opening a Raft segment: raise the soft limit toward
 * the hard one, and say so when that is not enough. */
static void nofile_fit(rlim_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rlim_t had = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		rl.rlim_cur = had;
	if (rl.rlim_cur < want)
		log_warn("the open-file limit (%llu) is below --http-connection-limit + 256 (%llu): raise it "
			 "(ulimit -n, systemd LimitNOFILE=)",
			 (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/* This thread (the loop: Raft's heartbeats and appends, applying entries) gets
 * the CPU before the API's threads: under a flood of requests the scheduler
 * runs the log's work first (on the 2-core bench, writes' gain was in the noise).
 * Called just before the loop runs, when the API's, the store's and the event
 * pump's threads exist already and stay at 0; threads the loop starts later
 * (libuv's pool for Raft's disk work) inherit the value. On Linux setpriority
 * with PRIO_PROCESS and 0 sets the calling thread only. */
static void loop_nice_set(int nice)
{
	if (nice == 0)
		return;
	if (setpriority(PRIO_PROCESS, 0, nice) != 0) {
		int e = errno;
		log_warn("the Raft loop thread stays at nice %d: --loop-nice %d was refused (%s); allow it with "
			 "CAP_SYS_NICE or RLIMIT_NICE (systemd: LimitNICE=%d), or set --loop-nice 0",
			 getpriority(PRIO_PROCESS, 0), nice, strerror(e), nice);
	} else {
		log_info("the Raft loop thread runs at nice %d", nice);
	}
}

int main(int argc, char **argv)
{
	static struct lattice lt;
	char err[1024];
	int rc = config_load(&lt.cfg, argc, argv, err, sizeof(err));
	if (rc == CONFIG_EXIT)
		return 0;
	if (rc != CONFIG_OK) {
		fprintf(stderr, "latticed: %s\n", err);
		return 2;
	}
	enum log_level lvl = LOG_INFO;
	log_level_parse(lt.cfg.log_level, &lvl);
	log_set_level(lvl);
	signal(SIGPIPE, SIG_IGN);
	/* Big buffers (snapshots, tens of MB) always from mmap: they grow with
	 * mremap instead of copy-and-double and go back to the system when freed.
	 * A fixed threshold also stops glibc from raising it after each free. */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	/* Fixing it also fixes the trim threshold at glibc's 128 KiB: then every
	 * free of a 64 KiB+ response buffer (a page of 100 items) in a worker
	 * thread's arena gave the top back with madvise, and each madvise stops
	 * the other cores for a TLB flush (measured: ~9% of a page's CPU; node
	 * pages/s +12% without it). Keep up to 8 MiB free at the top of each arena. */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);

	/* Before anything reads or writes the data dir or the database. */
	if (loop_lock_dir(lt.cfg.data_dir, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 1;
	}
	char instance[40], group[LOOP_GROUP_ID_LEN + 1];
	if (loop_prepare_dir(&lt.cfg, instance, sizeof(instance), group, sizeof(group), err, sizeof(err)) != 0) {
		log_error("%s", err);
		return 1;
	}
	log_info("replica %lld of lattice group %s (data dir %s, instance %s)", (long long)lt.cfg.id, group,
		 lt.cfg.data_dir, instance);
	char spool[4200];
	snprintf(spool, sizeof(spool), "%s/projection.spool", lt.cfg.data_dir);
	const struct store_config sc = {
		.conninfo = lt.cfg.pg,
		.schema_dir = lt.cfg.schema_dir,
		.group_id = group,
		.replica_id = (uint64_t)lt.cfg.id,
		.instance_id = instance,
		.wipe_foreign = lt.cfg.pg_reset,
		.spool_path = spool,
		.queue_max = (size_t)lt.cfg.projection_queue_mb << 20,
		/* loop_init sets the disk guard up before raft can hand over a batch */
		.room = on_spool_room,
		.room_arg = &lt.loop.disk,
		.read_timeout_ms = (unsigned)lt.cfg.pg_read_timeout_ms,
	};
	if (store_open(&lt.store, &sc, err, sizeof(err)) != 0) {
		log_error("PostgreSQL: %s", err);
		return 1;
	}
	if (store_claim_note(lt.store)[0])
		log_warn("PostgreSQL: %s", store_claim_note(lt.store));
	log_info("PostgreSQL ready: projection holds the log up to index %llu",
		 (unsigned long long)store_applied_index(lt.store));
	/* The loop first, then the writer thread: the writer calls on_projected
	 * after every commit, and must never find a loop that loop_init has not
	 * finished (or is still zeroing). Batches raft hands over while loop_init
	 * loads its log (a snapshot's rebuild) wait in the store's queue. */
	if (loop_init(&lt.loop, &lt.cfg, lt.store, err, sizeof(err)) != 0) {
		log_error("%s", err);
		store_close(lt.store);
		return 1;
	}
	disk_set_spool(&lt.loop.disk, spool, sc.queue_max);
	/* Event streams read what the writer commits (sse_notify): their pump
	 * starts before it. */
	struct sse_config ec = {
		.max_streams = (unsigned)lt.cfg.max_event_streams,
		.buffer_max = (size_t)lt.cfg.event_stream_buffer,
		/* Well inside the idle timeout, so a quiet stream is never closed as
		 * idle (a third: a late keep-alive still comes in time). */
		.keepalive_ms = lt.cfg.http_idle_timeout_s * 1000 / 3 < SSE_KEEPALIVE_MS_DEFAULT
					? (int)(lt.cfg.http_idle_timeout_s * 1000 / 3)
					: SSE_KEEPALIVE_MS_DEFAULT,
	};
	if (sse_start(&lt.sse, lt.store, store_applied_index(lt.store), &ec, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return 1;
	}
	if (store_start(lt.store, on_projected, &lt) != 0) {
		log_error("cannot start the PostgreSQL writer thread");
		return 1;
	}
	api_init(&lt.api, &lt.loop, lt.store, &lt.cfg);
	lt.api.sse = lt.sse;
	if (workq_start(&lt.api.reads, (unsigned)lt.cfg.pg_read_threads, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return 1;
	}
	nofile_fit((rlim_t)lt.cfg.http_connection_limit + 256);
	char host[256];
	int port = 0;
	config_split_hostport(lt.cfg.listen, host, sizeof(host), &port);
	struct http_config hc = {
		.host = host,
		.port = port,
		.threads = (unsigned)lt.cfg.http_threads,
		.handler = api_handle,
		.arg = &lt.api,
		.index = api_index,
		.observe = api_observe,
		.connection_limit = (unsigned)lt.cfg.http_connection_limit,
		.per_address_limit = (unsigned)lt.cfg.http_per_address_limit,
		.idle_timeout_s = (unsigned)lt.cfg.http_idle_timeout_s,
		.header_timeout_ms = (unsigned)lt.cfg.http_header_timeout_ms,
		.body_timeout_ms = (unsigned)lt.cfg.http_body_timeout_ms,
		.connection_memory = (size_t)lt.cfg.http_connection_memory,
	};
	if (http_start(&lt.http, &hc, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return 1;
	}
	log_info("REST API listening on http://%s:%d (%lld worker threads, %lld PostgreSQL read threads)", host,
		 http_port(lt.http), (long long)lt.cfg.http_threads, (long long)lt.cfg.pg_read_threads);
	uv_signal_init(&lt.loop.uv, &lt.sigterm);
	uv_signal_init(&lt.loop.uv, &lt.sigint);
	lt.sigterm.data = lt.sigint.data = &lt;
	uv_signal_start(&lt.sigterm, on_signal, SIGTERM);
	uv_signal_start(&lt.sigint, on_signal, SIGINT);

	loop_nice_set((int)lt.cfg.loop_nice);
	loop_run(&lt.loop);

	sse_stop(lt.sse); /* no connection may stay parked past http_stop */
	/* Nor suspended on a read: the queued ones run (a PostgreSQL that went away
	 * fails them at once), new ones get 503 shutting_down. */
	workq_stop(lt.api.reads);
	http_stop(lt.http);
	workq_free(lt.api.reads);
	lt.api.reads = NULL;
	int64_t since = lt.loop.close_started_ms ? lt.loop.close_started_ms : loop_now_ms();
	int64_t left = since + LATTICED_SHUTDOWN_MS - LATTICED_SHUTDOWN_TAIL_MS - loop_now_ms();
	int flushed = store_stop(lt.store, left > 0 ? (int)left : 0);
	if (flushed != 0)
		log_warn("PostgreSQL projection not fully flushed within the %d s shutdown bound; the next start "
			 "replays it from the Raft log",
			 LATTICED_SHUTDOWN_MS / 1000);
	store_close(lt.store);
	/* After the writer thread, which calls sse_notify after each commit. */
	sse_free(lt.sse);
	lt.sse = NULL;
	loop_close(&lt.loop); /* closes and destroys the NATS connection */
	/* nats.c's own threads (timers, callbacks, garbage collection) gone
	 * before exit, so none runs into the process's teardown. */
	if (lt.cfg.nats[0])
		nats_CloseAndWait(5000);
	config_free(&lt.cfg);
	log_info("stopped");
	return 0;
}
