#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tswait.h"

/* Why a request is answered before the handler sees it (http_req.refuse). */
enum { REFUSE_NONE = 0, REFUSE_URI_TOO_LONG, REFUSE_TOO_MANY_ARGS };

/* One per TCP connection, as libmicrohttpd's socket context: created when the
 * connection starts, freed when it closes (both on the connection's thread).
 * The reaper thread reads it; everything here is guarded by http.mu. */
struct http_conn {
	struct http_conn *prev, *next;
	MHD_socket fd;
	int64_t deadline_ms; /* close it then; 0: none (a request is being answered) */
	struct sockaddr_storage peer;
};

struct http {
	struct MHD_Daemon *d;
	struct http_config cfg;
	int port;
	MHD_socket quiesced_fd;
	/* The deadline reaper. */
	pthread_mutex_t mu;
	pthread_cond_t cv;          /* wakes the reaper: an earlier deadline, or stop */
	struct http_conn *conns;    /* every open connection */
	int64_t reaper_wake_ms;     /* when the reaper wakes next */
	bool reaper_running, stopping;
	unsigned reaped_unlogged;   /* closed since the last log line */
	int64_t reaped_logged_ms;
	char reaped_peer[INET6_ADDRSTRLEN];
	pthread_t reaper;
};

/* Microseconds: most answers take well under a millisecond, and /metrics has
 * sub-millisecond buckets. */
static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(void)
{
	return now_us() / 1000;
}

/* ---- deadlines ----------------------------------------------------------------------
 *
 * libmicrohttpd 0.9.75 calls back into us at a connection's start and end
 * (NOTIFY_CONNECTION), when its headers are complete (the handler's first call)
 * and when its answer has gone (NOTIFY_COMPLETED), each on the thread that owns
 * the connection; nothing runs while a client trickles in its headers. So a
 * deadline is armed at those points and a reaper thread enforces it:
 *   start or answer sent  -> headers due within header_timeout_ms
 *   headers complete      -> body due within body_timeout_ms
 *   request complete      -> no deadline (being answered; the idle timeout
 *                            still bounds a client that stops reading)
 * The reaper may not call libmicrohttpd for a connection (its functions are
 * for the owning thread), so it shuts the socket down: the owning thread then
 * reads EOF and closes the connection the ordinary way. The fd cannot have been
 * reused by then: libmicrohttpd closes a connection's socket only after its
 * NOTIFY_CLOSED callback (daemon.c, MHD_cleanup_connections), and that callback
 * unlinks the record under mu, which the reaper holds while it shuts down. */

static void conn_arm(struct http *h, struct http_conn *c, unsigned timeout_ms)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	c->deadline_ms = timeout_ms ? now_ms() + timeout_ms : 0;
	if (c->deadline_ms && c->deadline_ms < h->reaper_wake_ms)
		pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static struct http_conn *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *i = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return i ? i->socket_context : NULL;
}

static void peer_str(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	const void *a = NULL;
	if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (a == NULL || inet_ntop(ss->ss_family, a, out, (socklen_t)outlen) == NULL)
		snprintf(out, outlen, "?");
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct http *h = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		/* Without a record the connection still works; only the idle
		 * timeout bounds it then. */
		struct http_conn *c = calloc(1, sizeof(*c));
		const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (c == NULL || fd == NULL) {
			free(c);
			return;
		}
		c->fd = fd->connect_fd;
		const union MHD_ConnectionInfo *ad = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ad && ad->client_addr) {
			size_t n = ad->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
									 : sizeof(struct sockaddr_in);
			memcpy(&c->peer, ad->client_addr, n);
		}
		pthread_mutex_lock(&h->mu);
		c->next = h->conns;
		if (h->conns)
			h->conns->prev = c;
		h->conns = c;
		pthread_mutex_unlock(&h->mu);
		*socket_context = c;
		conn_arm(h, c, h->cfg.header_timeout_ms);
		return;
	}
	struct http_conn *c = *socket_context;
	if (c == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&h->mu);
	free(c);
	*socket_context = NULL;
}

#define REAPER_IDLE_MS 60000 /* nothing due: still wake now and then */
#define REAPER_LOG_MS 10000  /* at most one log line this often */

static void *reaper_main(void *arg)
{
	struct http *h = arg;
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		int64_t now = now_ms(), next = now + REAPER_IDLE_MS;
		for (struct http_conn *c = h->conns; c; c = c->next) {
			if (c->deadline_ms == 0)
				continue;
			if (c->deadline_ms > now) {
				if (c->deadline_ms < next)
					next = c->deadline_ms;
				continue;
			}
			/* Safe while we hold mu: see "deadlines" above. */
			shutdown(c->fd, SHUT_RDWR);
			c->deadline_ms = 0;
			if (h->reaped_unlogged++ == 0)
				peer_str(&c->peer, h->reaped_peer, sizeof(h->reaped_peer));
		}
		if (h->reaped_unlogged > 0) {
			if (now - h->reaped_logged_ms >= REAPER_LOG_MS) {
				unsigned n = h->reaped_unlogged;
				char peer[sizeof(h->reaped_peer)];
				memcpy(peer, h->reaped_peer, sizeof(peer));
				h->reaped_unlogged = 0;
				h->reaped_logged_ms = now;
				pthread_mutex_unlock(&h->mu);
				log_warn("closed %u HTTP connection(s) that did not deliver their request in time "
					 "(headers within %u ms, body within %u ms; e.g. from %s)",
					 n, h->cfg.header_timeout_ms, h->cfg.body_timeout_ms, peer);
				pthread_mutex_lock(&h->mu);
				continue;
			}
			if (h->reaped_logged_ms + REAPER_LOG_MS < next)
				next = h->reaped_logged_ms + REAPER_LOG_MS;
		}
		h->reaper_wake_ms = next;
		struct timespec ts = tswait_after(CLOCK_MONOTONIC, next - now_ms());
		pthread_cond_timedwait(&h->cv, &h->mu, &ts);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

void http_error(struct http_resp *resp, int status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_decref(resp->body);
	resp->status = status;
	resp->body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	if (resp->body == NULL) /* message not valid UTF-8: say so rather than fail */
		resp->body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", "(unprintable message)");
}

/* A streamed answer's context, owned by its MHD_Response (freed in
 * stream_free): the request may be gone before the response is. */
struct http_streamer {
	struct http_stream s;
	struct MHD_Connection *conn;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_streamer *st = cls;
	(void)pos;
	ssize_t n = st->s.read(st->s.cls, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing yet: park the connection rather than have libmicrohttpd call
	 * again at once (a busy loop). Its suspend cancels a resume that came
	 * first, in which case we are called again. */
	if (n == 0)
		MHD_suspend_connection(st->conn);
	return n;
}

static void stream_free(void *cls)
{
	struct http_streamer *st = cls;
	st->s.done(st->s.cls);
	free(st);
}

static struct MHD_Response *stream_response(struct http_req *req, struct http_resp *resp)
{
	struct http_streamer *st = malloc(sizeof(*st));
	if (st == NULL) {
		resp->stream.done(resp->stream.cls);
		return NULL;
	}
	st->s = resp->stream;
	st->conn = req->conn;
	const union MHD_ConnectionInfo *fd = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (fd && st->s.sndbuf > 0)
		setsockopt(fd->connect_fd, SOL_SOCKET, SO_SNDBUF, &st->s.sndbuf, sizeof(st->s.sndbuf));
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
	if (r == NULL)
		stream_free(st);
	return r;
}

static enum MHD_Result send_resp(struct http_req *req, struct http_resp *resp)
{
	if (resp->stream.read != NULL) {
		struct MHD_Response *r = stream_response(req, resp);
		memset(&resp->stream, 0, sizeof(resp->stream));
		if (r == NULL)
			return MHD_NO;
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
		if (resp->cache_control)
			MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, resp->cache_control);
		/* nginx buffers answers unless told not to: events would arrive late. */
		MHD_add_response_header(r, "X-Accel-Buffering", "no");
		char idx[32];
		snprintf(idx, sizeof(idx), "%llu", (unsigned long long)resp->index);
		MHD_add_response_header(r, "X-Lattice-Index", idx);
		enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned)resp->status, r);
		MHD_destroy_response(r);
		req->responded = true;
		struct http *h = req->http;
		if (h->cfg.observe)
			h->cfg.observe(h->cfg.arg, req, resp->status, (double)(now_us() - req->started_us) / 1e6);
		return ret;
	}
	char *buf = NULL;
	size_t len = 0;
	const char *ctype = resp->content_type;
	if (resp->body != NULL) {
		buf = json_dumps(resp->body, JSON_COMPACT);
		if (buf == NULL) {
			resp->status = 500;
			buf = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode response\"}}");
		}
		len = buf ? strlen(buf) : 0;
		ctype = ctype ? ctype : "application/json";
	} else if (resp->text != NULL) {
		buf = resp->text;
		resp->text = NULL;
		len = resp->text_len ? resp->text_len : strlen(buf);
		ctype = ctype ? ctype : "text/plain; charset=utf-8";
	}
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, buf ? buf : (void *)"", buf ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (r == NULL) {
		free(buf);
		return MHD_NO;
	}
	if (ctype)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	char idx[32];
	snprintf(idx, sizeof(idx), "%llu", (unsigned long long)resp->index);
	MHD_add_response_header(r, "X-Lattice-Index", idx);
	if (resp->location[0])
		MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, resp->location);
	if (resp->allow[0])
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
	if (resp->retry_after[0])
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, resp->retry_after);
	if (resp->cache_control)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, resp->cache_control);
	for (size_t i = 0; i + 1 < sizeof(resp->headers) / sizeof(resp->headers[0]) && resp->headers[i]; i += 2)
		MHD_add_response_header(r, resp->headers[i], resp->headers[i + 1]);
	enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned)resp->status, r);
	MHD_destroy_response(r);
	req->responded = true;
	struct http *h = req->http;
	if (h->cfg.observe)
		h->cfg.observe(h->cfg.arg, req, resp->status, (double)(now_us() - req->started_us) / 1e6);
	json_decref(resp->body);
	resp->body = NULL;
	return ret;
}

static uint64_t own_index(struct http *h)
{
	return h->cfg.index ? h->cfg.index(h->cfg.arg) : 0;
}

static struct http_req *req_new(struct http *h, struct MHD_Connection *conn)
{
	struct http_req *req = calloc(1, sizeof(*req));
	if (req == NULL)
		return NULL;
	req->conn = conn;
	req->http = h;
	req->hc = conn_of(conn);
	return req;
}

/* libmicrohttpd's URI log callback: called on the connection's thread once the
 * request line is in, with the target as sent (path and query, not yet
 * decoded), before libmicrohttpd splits the query. Its return value is the
 * request's context (*con_cls). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http *h = cls;
	struct http_req *req = req_new(h, conn);
	if (req == NULL)
		return NULL;
	const char *q = strchr(uri, '?');
	size_t nargs = 0;
	if (q != NULL) {
		nargs = 1;
		for (const char *p = q + 1; *p; p++)
			nargs += *p == '&';
	}
	if (strlen(uri) > HTTP_URI_MAX)
		req->refuse = REFUSE_URI_TOO_LONG;
	else if (nargs > HTTP_QUERY_ARGS_MAX)
		req->refuse = REFUSE_TOO_MANY_ARGS;
	if (req->refuse != REFUSE_NONE) {
		/* libmicrohttpd 0.9.75 stores every query parameter in the
		 * connection's memory pool; when the pool runs out it queues a 431
		 * but then carries on as if the line had been read, and the
		 * connection hangs until the idle timeout (1,000 parameters did
		 * that). The request is refused anyway, so end the query string
		 * right after its '?': libmicrohttpd then parses no parameters.
		 * uri points into the connection's read buffer, which is writable
		 * (libmicrohttpd itself writes NULs into it right after this call). */
		if (q != NULL)
			((char *)q)[1] = '\0';
		return req;
	}
	req->path = strndup(uri, q ? (size_t)(q - uri) : strlen(uri));
	if (req->path == NULL) {
		free(req);
		return NULL;
	}
	return req;
}

/* The handler's first call: the headers are in. Returns true when req has
 * been answered already (a limit http.c enforces itself). */
static bool on_headers(struct http *h, struct http_req *req, enum MHD_Result *ret)
{
	struct MHD_Connection *conn = req->conn;
	struct http_resp resp = {0};
	const union MHD_ConnectionInfo *hs = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (req->refuse == REFUSE_URI_TOO_LONG) {
		http_error(&resp, 414, "uri_too_long", "the request target (path and query) is over the %d byte limit",
			   HTTP_URI_MAX);
	} else if (req->refuse == REFUSE_TOO_MANY_ARGS) {
		http_error(&resp, 400, "invalid_query", "more than %d query parameters", HTTP_QUERY_ARGS_MAX);
	} else if (hs != NULL && hs->header_size > HTTP_HEAD_MAX) {
		http_error(&resp, 431, "headers_too_large", "the request line and headers are over the %d byte limit",
			   HTTP_HEAD_MAX);
	} else if (cl != NULL && strtoull(cl, NULL, 10) > HTTP_BODY_MAX) {
		/* Refuse an announced oversized body before reading any of it. */
		req->too_large = true;
		http_error(&resp, 413, "payload_too_large", "request body is over the %d byte limit", HTTP_BODY_MAX);
	} else {
		return false;
	}
	resp.index = own_index(h);
	*ret = send_resp(req, &resp);
	return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http *h = cls;
	struct http_req *req = *con_cls;
	(void)version;
	if (req == NULL) { /* on_uri could not allocate it */
		req = req_new(h, conn);
		if (req == NULL)
			return MHD_NO;
		*con_cls = req;
	}
	if (!req->started) {
		req->started = true;
		req->method = method;
		req->url = url;
		req->started_us = now_us();
		conn_arm(h, req->hc, h->cfg.body_timeout_ms);
		enum MHD_Result ret;
		if (on_headers(h, req, &ret))
			return ret;
		return MHD_YES;
	}
	if (req->responded) {
		/* Already answered (413, 414, ...): swallow whatever body still arrives. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		/* A body without Content-Length grew over the limit: drop the rest and
		 * answer 413 once it has been read (libmicrohttpd takes no answer
		 * in the middle of an upload). */
		if (req->too_large || req->body_len + *upload_data_size > HTTP_BODY_MAX) {
			req->too_large = true;
			*upload_data_size = 0;
			return MHD_YES;
		}
		char *nb = realloc(req->body, req->body_len + *upload_data_size + 1);
		if (nb == NULL)
			return MHD_NO;
		memcpy(nb + req->body_len, upload_data, *upload_data_size);
		req->body = nb;
		req->body_len += *upload_data_size;
		req->body[req->body_len] = '\0';
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!req->received) {
		req->received = true;
		conn_arm(h, req->hc, 0);
	}
	struct http_resp resp = {0};
	if (req->too_large) {
		http_error(&resp, 413, "payload_too_large", "request body is over the %d byte limit", HTTP_BODY_MAX);
		resp.index = own_index(h);
		return send_resp(req, &resp);
	}
	enum http_next next = h->cfg.handler(h->cfg.arg, req, &resp);
	if (next == HTTP_SUSPEND) {
		json_decref(resp.body);
		free(resp.text);
		return MHD_YES;
	}
	if (resp.status == 0) {
		http_error(&resp, 500, "internal", "handler produced no response");
		resp.index = own_index(h);
	}
	enum MHD_Result r = send_resp(req, &resp);
	free(resp.text);
	return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	(void)toe;
	/* The connection may carry another request: its headers are due anew. */
	conn_arm(h, conn_of(conn), h->cfg.header_timeout_ms);
	struct http_req *req = *con_cls;
	if (req == NULL)
		return;
	if (req->state_free)
		req->state_free(req->state);
	free(req->path);
	free(req->body);
	free(req);
	*con_cls = NULL;
}

int http_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes %HH in the URL and query values, except %00: a NUL would cut the
 * string short ("/v1/nodes/victim%00junk" would name node "victim"), so it stays
 * as the three characters "%00", which no id or value accepts. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	char *w = s;
	for (const char *r = s; *r;) {
		int hi, lo;
		if (r[0] == '%' && (hi = http_hexval(r[1])) >= 0 && (lo = http_hexval(r[2])) >= 0 && (hi | lo) != 0) {
			*w++ = (char)(hi * 16 + lo);
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

static void on_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
	(void)cls;
	log_error("libmicrohttpd failed at %s:%u: %s", file, line, reason ? reason : "");
	abort();
}

static void reaper_stop(struct http *h)
{
	if (h->reaper_running) {
		pthread_mutex_lock(&h->mu);
		h->stopping = true;
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->reaper, NULL);
		h->reaper_running = false;
	}
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
}

/* 0 or a pthread error number. */
static int reaper_start(struct http *h)
{
	pthread_condattr_t ca;
	int rc = pthread_mutex_init(&h->mu, NULL);
	if (rc != 0)
		return rc;
	if ((rc = pthread_condattr_init(&ca)) != 0) {
		pthread_mutex_destroy(&h->mu);
		return rc;
	}
	rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0) {
		pthread_mutex_destroy(&h->mu);
		return rc;
	}
	h->reaper_wake_ms = INT64_MAX;
	if ((rc = pthread_create(&h->reaper, NULL, reaper_main, h)) != 0) {
		reaper_stop(h);
		return rc;
	}
	h->reaper_running = true;
	return 0;
}

int http_start(struct http **out, const struct http_config *cfg, char *err, size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->cfg = *cfg;
	h->quiesced_fd = MHD_INVALID_SOCKET;
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)cfg->port);
	if (inet_pton(AF_INET, cfg->host, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "--listen: '%s' is not an IPv4 address", cfg->host);
		free(h);
		return -1;
	}
	if (cfg->connection_limit < cfg->threads) {
		/* libmicrohttpd splits the limit among its threads. */
		snprintf(err, errlen, "--http-connection-limit (%u) must be at least --http-threads (%u)",
			 cfg->connection_limit, cfg->threads);
		free(h);
		return -1;
	}
	int rc = reaper_start(h);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the HTTP deadline thread: %s", strerror(rc));
		free(h);
		return -1;
	}
	MHD_set_panic_func(on_panic, NULL);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->connection_limit,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->per_address_limit,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->idle_timeout_s,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->connection_memory,
				MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
				MHD_OPTION_UNESCAPE_CALLBACK, unescape, (void *)NULL,
				MHD_OPTION_URI_LOG_CALLBACK, on_uri, (void *)h,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, (void *)h,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)h, MHD_OPTION_END);
	if (h->d == NULL) {
		snprintf(err, errlen, "cannot listen on %s:%d (in use, or not an address of this host)", cfg->host,
			 cfg->port);
		reaper_stop(h);
		free(h);
		return -1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : cfg->port;
	*out = h;
	return 0;
}

int http_port(const struct http *h)
{
	return h->port;
}

void http_quiesce(struct http *h)
{
	if (h->quiesced_fd == MHD_INVALID_SOCKET)
		h->quiesced_fd = MHD_quiesce_daemon(h->d);
}

void http_stop(struct http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	if (h->quiesced_fd != MHD_INVALID_SOCKET)
		close(h->quiesced_fd);
	reaper_stop(h); /* every connection is closed: nothing left to reap */
	free(h);
}

void http_suspend(struct http_req *req)
{
	MHD_suspend_connection(req->conn);
}

void http_resume(struct http_req *req)
{
	MHD_resume_connection(req->conn);
}

int http_fd(struct http_req *req)
{
	const union MHD_ConnectionInfo *i = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	return i ? (int)i->connect_fd : -1;
}

const char *http_query(struct http_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(struct http_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, key);
}
