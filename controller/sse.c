#include "sse.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "query.h"
#include "store.h"
#include "tswait.h"

#define SSE_BATCH 256        /* events per read of the database */
#define SSE_KEYS_MAX 16      /* distinct stream positions read per round */
#define SSE_FINAL_ROOM 1024  /* kept free in every buffer for the closing event */
#define SSE_RETRY_DB_MS 1000 /* after a failed read */
#define SSE_IDLE_WAIT_MS 1000
#define SSE_SNDBUF_MAX (256 * 1024) /* the kernel's share of a stream's backlog */

struct sse_stream {
	struct sse_stream *prev, *next;
	struct sse *hub;
	/* Valid while parked: the connection is suspended (or about to be) and
	 * only our resume lets it go on, so it cannot close under us. */
	struct http_req *req;
	int fd;    /* its socket: valid while parked, like req */
	char *buf; /* unsent bytes are [off, len) */
	size_t off, len, cap;
	uint64_t cursor;     /* seq of the last event put into buf */
	bool from_oldest;    /* the next read takes the oldest held after cursor */
	uint64_t seen_index; /* every event up to this projected index is in buf */
	bool fresh;          /* not read up to any index yet */
	bool parked;
	bool closing; /* nothing more is added; the answer ends once buf is sent */
	/* The next event did not fit: no reads until the client has taken half
	 * the buffer; cut off if it takes nothing for keepalive_ms. */
	bool full;
	int64_t full_since_ms;
	int64_t last_put_ms;
};

struct sse {
	pthread_mutex_t mu; /* everything below but cfg and store */
	pthread_cond_t cv;  /* wakes the pump: new index, new stream, stop */
	struct sse_config cfg;
	struct store *store;
	struct sse_stream *streams;
	unsigned count;
	uint64_t projected;
	bool stopping;
	pthread_t pump;
	bool pump_running;
	/* pump-only */
	struct http_req **wake;
	size_t nwake, capwake;
	int64_t db_retry_ms;
	int64_t db_warned_ms;
	/* When the parked streams were last looked at for gone clients; a
	 * refused stream asks for a look at once (probe). */
	bool probe;
	int64_t probed_ms;
	atomic_uint_fast64_t opened, refused, overflowed, events_sent, reads;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a stream's buffer (hub locked) ---------------------------------------- */

/* Appends n bytes if the buffer stays within limit; false otherwise (or out
 * of memory). */
static bool put(struct sse_stream *st, const char *p, size_t n, size_t limit)
{
	if (st->off > 0 && st->len + n > st->cap) {
		memmove(st->buf, st->buf + st->off, st->len - st->off);
		st->len -= st->off;
		st->off = 0;
	}
	if (st->len + n > limit)
		return false;
	if (st->len + n > st->cap) {
		size_t cap = st->cap ? st->cap : 4096;
		while (cap < st->len + n)
			cap *= 2;
		if (cap > limit)
			cap = limit;
		char *nb = realloc(st->buf, cap);
		if (nb == NULL)
			return false;
		st->buf = nb;
		st->cap = cap;
	}
	memcpy(st->buf + st->len, p, n);
	st->len += n;
	st->last_put_ms = now_ms();
	return true;
}

/* Marks the stream for a resume once the hub is unlocked. */
static void wake(struct sse *h, struct sse_stream *st)
{
	if (!st->parked)
		return;
	if (h->nwake == h->capwake) {
		size_t cap = h->capwake ? h->capwake * 2 : 64;
		struct http_req **nw = realloc(h->wake, cap * sizeof(*nw));
		if (nw == NULL)
			return; /* stays parked until the next keep-alive tries again */
		h->wake = nw;
		h->capwake = cap;
	}
	st->parked = false;
	h->wake[h->nwake++] = st->req;
}

/* Outside the lock: see struct sse_stream.req for why the requests are alive. */
static void wake_all(struct sse *h)
{
	for (size_t i = 0; i < h->nwake; i++)
		http_resume(h->wake[i]);
	h->nwake = 0;
}

/* The closing event (event: NAME, data: {"error": ...}) and no more. The
 * room kept free guarantees it fits. */
static void finish(struct sse *h, struct sse_stream *st, const char *event, const char *code, const char *msg,
		   uint64_t extra_seq)
{
	json_t *d = json_pack("{s:{s:s,s:s},s:I}", "error", "code", code, "message", msg, "last_seq",
			      (json_int_t)st->cursor);
	if (d && extra_seq)
		json_object_set_new(json_object_get(d, "error"), "first_seq", json_integer((json_int_t)extra_seq));
	char *text = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	char line[SSE_FINAL_ROOM];
	int n = snprintf(line, sizeof(line), "event: %s\ndata: %s\n\n", event, text ? text : "{}");
	free(text);
	if (n > 0 && (size_t)n < sizeof(line))
		put(st, line, (size_t)n, h->cfg.buffer_max + SSE_FINAL_ROOM);
	st->closing = true;
	wake(h, st);
}

/* ---- the HTTP side ---------------------------------------------------------- */

static ssize_t stream_read(void *cls, char *buf, size_t max)
{
	struct sse_stream *st = cls;
	struct sse *h = st->hub;
	pthread_mutex_lock(&h->mu);
	size_t avail = st->len - st->off;
	if (avail > 0) {
		size_t n = avail < max ? avail : max;
		memcpy(buf, st->buf + st->off, n);
		st->off += n;
		if (st->off == st->len)
			st->off = st->len = 0;
		if (st->full && !st->closing && st->len - st->off <= h->cfg.buffer_max / 2) {
			st->full = false;
			pthread_cond_signal(&h->cv); /* read on from its cursor */
		}
		pthread_mutex_unlock(&h->mu);
		return (ssize_t)n;
	}
	if (st->closing) {
		pthread_mutex_unlock(&h->mu);
		return HTTP_STREAM_END;
	}
	st->parked = true;
	pthread_mutex_unlock(&h->mu);
	return 0;
}

static void stream_done(void *cls)
{
	struct sse_stream *st = cls;
	struct sse *h = st->hub;
	pthread_mutex_lock(&h->mu);
	if (st->prev)
		st->prev->next = st->next;
	else
		h->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	h->count--;
	if (h->stopping)
		pthread_cond_broadcast(&h->cv); /* sse_stop waits for the last */
	pthread_mutex_unlock(&h->mu);
	free(st->buf);
	free(st);
}

int sse_open(struct sse *h, struct http_req *req, uint64_t after, int from_oldest, struct http_resp *resp)
{
	struct sse_stream *st = calloc(1, sizeof(*st));
	char hello[64];
	int n = snprintf(hello, sizeof(hello), "retry: %d\n\n", SSE_RETRY_MS);
	if (st == NULL || !put(st, hello, (size_t)n, h->cfg.buffer_max)) {
		if (st)
			free(st->buf);
		free(st);
		http_error(resp, 503, "out_of_memory", "cannot open an event stream: out of memory");
		return -1;
	}
	st->hub = h;
	st->req = req;
	st->fd = http_fd(req);
	st->cursor = after;
	st->from_oldest = from_oldest != 0;
	st->fresh = true;
	pthread_mutex_lock(&h->mu);
	if (h->stopping || h->count >= h->cfg.max_streams) {
		bool stopping = h->stopping;
		pthread_mutex_unlock(&h->mu);
		free(st->buf);
		free(st);
		atomic_fetch_add(&h->refused, 1);
		pthread_mutex_lock(&h->mu);
		if (!h->probe) {
			h->probe = true;
			pthread_cond_signal(&h->cv);
		}
		pthread_mutex_unlock(&h->mu);
		if (stopping)
			http_error(resp, 503, "shutting_down", "this replica is shutting down; open the stream on another");
		else if (h->cfg.max_streams == 0)
			http_error(resp, 503, "too_many_event_streams",
				   "event streams are turned off on this replica (--max-event-streams 0); use another "
				   "replica, or long-poll GET /v1/events?since=N&wait=S");
		else
			http_error(resp, 503, "too_many_event_streams",
				   "this replica already serves %u event streams (--max-event-streams); use another "
				   "replica, or long-poll GET /v1/events?since=N&wait=S",
				   h->cfg.max_streams);
		snprintf(resp->retry_after, sizeof(resp->retry_after), "5");
		return -1;
	}
	st->next = h->streams;
	if (h->streams)
		h->streams->prev = st;
	h->streams = st;
	h->count++;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	atomic_fetch_add(&h->opened, 1);
	resp->status = 200;
	resp->content_type = "text/event-stream";
	resp->cache_control = "no-cache";
	resp->stream.read = stream_read;
	resp->stream.done = stream_done;
	resp->stream.cls = st;
	resp->stream.sndbuf = h->cfg.buffer_max < SSE_SNDBUF_MAX ? (int)h->cfg.buffer_max : SSE_SNDBUF_MAX;
	return 0;
}

/* ---- the pump --------------------------------------------------------------- */

/* A batch of events formatted once for every stream at the same position. */
struct batch {
	char *text;
	size_t len;
	size_t ends[SSE_BATCH]; /* where each event's text ends */
	uint64_t seqs[SSE_BATCH];
	size_t n;
};

static int batch_format(struct batch *b, json_t *items)
{
	size_t i;
	json_t *it;
	b->len = 0;
	b->n = 0;
	json_array_foreach(items, i, it) {
		if (b->n == SSE_BATCH)
			break;
		char *data = json_dumps(it, JSON_COMPACT);
		if (data == NULL)
			return -1;
		uint64_t seq = (uint64_t)json_integer_value(json_object_get(it, "seq"));
		/* jansson escapes newlines in strings: the data is one line. */
		size_t need = strlen(data) + 48;
		char *nt = realloc(b->text, b->len + need);
		if (nt == NULL) {
			free(data);
			return -1;
		}
		b->text = nt;
		b->len += (size_t)snprintf(b->text + b->len, need, "id: %" PRIu64 "\ndata: %s\n\n", seq, data);
		free(data);
		b->ends[b->n] = b->len;
		b->seqs[b->n++] = seq;
	}
	return 0;
}

struct key {
	uint64_t cursor;
	bool from_oldest;
};

/* Some events up to proj may not be in its buffer yet. */
static bool needs_read(const struct sse_stream *st, uint64_t proj)
{
	return !st->closing && !st->full && (st->fresh || st->seen_index < proj);
}

static bool stream_at(const struct sse_stream *st, const struct key *k, uint64_t proj)
{
	return needs_read(st, proj) && st->cursor == k->cursor && st->from_oldest == k->from_oldest;
}

/* Puts a batch read at position k into every stream still there. */
static void deliver(struct sse *h, const struct key *k, uint64_t proj, const struct batch *b, bool complete)
{
	for (struct sse_stream *st = h->streams; st; st = st->next) {
		if (!stream_at(st, k, proj))
			continue;
		size_t from = 0;
		for (size_t i = 0; i < b->n; i++) {
			if (!put(st, b->text + from, b->ends[i] - from, h->cfg.buffer_max)) {
				/* Wait for the client to take some; the rest is read
				 * again from its cursor then. */
				st->full = true;
				st->full_since_ms = now_ms();
				break;
			}
			from = b->ends[i];
			st->cursor = b->seqs[i];
			st->from_oldest = false;
			atomic_fetch_add(&h->events_sent, 1);
		}
		if (!st->full && complete) {
			st->seen_index = proj;
			st->fresh = false;
		}
		wake(h, st);
	}
}

static void gone(struct sse *h, const struct key *k, uint64_t proj, uint64_t first)
{
	for (struct sse_stream *st = h->streams; st; st = st->next) {
		if (!stream_at(st, k, proj))
			continue;
		char msg[300];
		snprintf(msg, sizeof(msg),
			 "this replica no longer holds events %" PRIu64 " to %" PRIu64
			 " (its database was rebuilt from a Raft snapshot); reconnect with since=%" PRIu64
			 " to go on from the first it holds",
			 st->cursor + 1, first - 1, first - 1);
		finish(h, st, "compacted", "events_compacted", msg, first);
	}
}

/* One read per distinct position of the streams behind proj. Returns true
 * when some stream may have more to read right away. */
static bool pump_round(struct sse *h, PGconn *c, struct batch *b)
{
	struct key keys[SSE_KEYS_MAX];
	size_t nk = 0;
	pthread_mutex_lock(&h->mu);
	uint64_t proj = h->projected;
	for (struct sse_stream *st = h->streams; st && nk < SSE_KEYS_MAX; st = st->next) {
		if (!needs_read(st, proj))
			continue;
		size_t i = 0;
		while (i < nk && !(keys[i].cursor == st->cursor && keys[i].from_oldest == st->from_oldest))
			i++;
		if (i == nk)
			keys[nk++] = (struct key){st->cursor, st->from_oldest};
	}
	pthread_mutex_unlock(&h->mu);
	bool more = nk == SSE_KEYS_MAX;
	for (size_t i = 0; i < nk; i++) {
		json_t *items = NULL;
		uint64_t last = 0, first = 0;
		char err[256] = "";
		int rc = query_events(c, keys[i].cursor, keys[i].from_oldest, SSE_BATCH, &items, &last, &first, err,
				      sizeof(err));
		atomic_fetch_add(&h->reads, 1);
		if (rc == QUERY_GONE) {
			pthread_mutex_lock(&h->mu);
			gone(h, &keys[i], proj, first);
			pthread_mutex_unlock(&h->mu);
			wake_all(h);
			continue;
		}
		if (rc != QUERY_OK || batch_format(b, items) != 0) {
			json_decref(items);
			int64_t now = now_ms();
			if (now - h->db_warned_ms >= 60000) {
				log_warn("event streams: cannot read new events from PostgreSQL (%s); retrying every %d ms",
					 rc != QUERY_OK ? err : "out of memory", SSE_RETRY_DB_MS);
				h->db_warned_ms = now;
			}
			h->db_retry_ms = now + SSE_RETRY_DB_MS;
			return false;
		}
		bool complete = json_array_size(items) < SSE_BATCH;
		json_decref(items);
		more |= !complete;
		pthread_mutex_lock(&h->mu);
		deliver(h, &keys[i], proj, b, complete);
		pthread_mutex_unlock(&h->mu);
		wake_all(h);
	}
	return more;
}

/* End-of-file (or an error) on a socket we only peek at. Bytes waiting (a
 * pipelined request) are not a sign of anything. */
static bool client_gone(int fd)
{
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Hub locked. A comment line to every stream quiet since keepalive_ms, the
 * final overflow event to every stream full as long; returns when the next
 * is due. */
static int64_t keepalive(struct sse *h, int64_t now)
{
	static const char ka[] = ": keep-alive\n\n";
	int64_t next = now + h->cfg.keepalive_ms;
	/* A client that went away while its stream was parked is seen by nobody
	 * (libmicrohttpd neither reads nor writes a suspended connection): once a
	 * second, and at once when a stream was refused, look at each parked
	 * socket. End-of-file there ends the stream, which frees its place. The
	 * socket is the connection's as long as it is parked. */
	bool look = h->probe || now - h->probed_ms >= 1000;
	if (look) {
		h->probe = false;
		h->probed_ms = now;
	} else if (h->probed_ms + 1000 < next) {
		next = h->probed_ms + 1000;
	}
	for (struct sse_stream *st = h->streams; st; st = st->next) {
		if (st->closing)
			continue;
		if (st->full) {
			int64_t cut = st->full_since_ms + h->cfg.keepalive_ms;
			if (cut <= now) {
				char msg[400];
				snprintf(msg, sizeof(msg),
					 "this client left %zu bytes of events unread for %d ms and was cut off; "
					 "reconnect with Last-Event-ID: %" PRIu64 " (or ?since=%" PRIu64 ") to go on",
					 h->cfg.buffer_max, h->cfg.keepalive_ms, st->cursor, st->cursor);
				finish(h, st, "overflow", "slow_consumer", msg, 0);
				atomic_fetch_add(&h->overflowed, 1);
				continue;
			}
			if (cut < next)
				next = cut;
			continue;
		}
		if (look && st->parked && st->fd >= 0 && client_gone(st->fd)) {
			st->closing = true;
			wake(h, st);
			continue;
		}
		int64_t due = st->last_put_ms + h->cfg.keepalive_ms;
		if (due <= now) {
			/* No room: the buffer is nearly full anyway, not quiet. */
			put(st, ka, sizeof(ka) - 1, h->cfg.buffer_max);
			wake(h, st);
			due = now + h->cfg.keepalive_ms;
		}
		if (due < next)
			next = due;
	}
	return next;
}

static bool behind(struct sse *h)
{
	for (struct sse_stream *st = h->streams; st; st = st->next)
		if (needs_read(st, h->projected))
			return true;
	return false;
}

static void *pump_main(void *arg)
{
	struct sse *h = arg;
	struct batch b = {0};
	bool more = false;
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		int64_t now = now_ms();
		int64_t next = keepalive(h, now);
		if (h->nwake) {
			pthread_mutex_unlock(&h->mu);
			wake_all(h);
			pthread_mutex_lock(&h->mu);
		}
		bool ready = now >= h->db_retry_ms && (more || behind(h));
		if (!ready) {
			if (now < h->db_retry_ms && h->db_retry_ms < next)
				next = h->db_retry_ms;
			if (next > now + SSE_IDLE_WAIT_MS)
				next = now + SSE_IDLE_WAIT_MS;
			struct timespec ts = tswait_after(CLOCK_MONOTONIC, next - now);
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&h->mu);
		/* This thread's own connection (store_conn), made on first use. */
		PGconn *c = store_conn(h->store);
		if (c == NULL) {
			h->db_retry_ms = now_ms() + SSE_RETRY_DB_MS;
			more = false;
		} else {
			more = pump_round(h, c, &b);
		}
		pthread_mutex_lock(&h->mu);
	}
	/* Stopping: what is buffered is still sent, then each answer ends. */
	for (struct sse_stream *st = h->streams; st; st = st->next) {
		st->closing = true;
		wake(h, st);
	}
	pthread_mutex_unlock(&h->mu);
	wake_all(h);
	free(b.text);
	return NULL;
}

/* ---- lifecycle ----------------------------------------------------------------- */

int sse_start(struct sse **out, struct store *store, uint64_t projected, const struct sse_config *cfg, char *err,
	      size_t errlen)
{
	struct sse *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->cfg = *cfg;
	if (h->cfg.buffer_max == 0)
		h->cfg.buffer_max = SSE_BUFFER_MAX_DEFAULT;
	if (h->cfg.keepalive_ms <= 0)
		h->cfg.keepalive_ms = SSE_KEEPALIVE_MS_DEFAULT;
	h->store = store;
	h->projected = projected;
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);
	if (rc == 0) {
		rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		if (rc == 0)
			rc = pthread_cond_init(&h->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (rc == 0 && (rc = pthread_mutex_init(&h->mu, NULL)) != 0)
		pthread_cond_destroy(&h->cv);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the event stream thread: %s", strerror(rc));
		free(h);
		return -1;
	}
	if ((rc = pthread_create(&h->pump, NULL, pump_main, h)) != 0) {
		snprintf(err, errlen, "cannot start the event stream thread: %s", strerror(rc));
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return -1;
	}
	h->pump_running = true;
	*out = h;
	return 0;
}

void sse_notify(struct sse *h, uint64_t index)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	if (index > h->projected) {
		h->projected = index;
		if (h->streams)
			pthread_cond_signal(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
}

void sse_stop(struct sse *h)
{
	if (h == NULL || !h->pump_running)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->pump, NULL);
	h->pump_running = false;
	/* Give the streams a moment to send what they hold and their end, so
	 * clients see a clean close (http_stop cuts whatever is left). */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 1;
	pthread_mutex_lock(&h->mu);
	while (h->count > 0 && pthread_cond_timedwait(&h->cv, &h->mu, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&h->mu);
}

void sse_free(struct sse *h)
{
	if (h == NULL)
		return;
	sse_stop(h);
	if (h->streams)
		log_warn("event streams: %u still open at exit", h->count);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h->wake);
	free(h);
}

void sse_get_stats(struct sse *h, struct sse_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	out->streams = h->count;
	pthread_mutex_unlock(&h->mu);
	out->opened = atomic_load(&h->opened);
	out->refused = atomic_load(&h->refused);
	out->overflowed = atomic_load(&h->overflowed);
	out->events_sent = atomic_load(&h->events_sent);
	out->reads = atomic_load(&h->reads);
}
