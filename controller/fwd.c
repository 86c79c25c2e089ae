#include "fwd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FWD_MAX_PER_HOST 64
/* latticed closes a kept-alive connection idle for --http-header-timeout-ms
 * (10 s by default): one idle longer than this is closed, not reused. */
#define FWD_IDLE_MAX_MS 2000

enum conn_state { CONN_CONNECTING, CONN_IDLE, CONN_BUSY, CONN_CLOSING };

struct fwd_conn {
	struct fwd *fwd;
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	enum conn_state state;
	char hostport[64];
	struct fwd_req *req; /* in flight on it */
	char *head;          /* the request line and headers being written */
	char *rbuf;
	size_t rlen, rcap;
	size_t head_len;      /* of the response, once its headers are complete (0 before) */
	size_t content_length;
	bool close_after;
	uint64_t idle_since; /* uv_now when it last became idle */
	struct fwd_conn *next;
};

static void finish(struct fwd_req *r, enum fwd_outcome outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void dispatch(struct fwd *f, struct fwd_req *r);

int fwd_hostport(const char *url, char *out, size_t outlen)
{
	if (strncmp(url, "http://", 7) != 0)
		return -1;
	const char *h = url + 7, *end = h + strcspn(h, "/?#");
	char buf[64];
	if ((size_t)(end - h) >= sizeof(buf) || end == h)
		return -1;
	memcpy(buf, h, (size_t)(end - h));
	buf[end - h] = '\0';
	char *colon = strrchr(buf, ':');
	if (colon == NULL)
		return -1;
	*colon = '\0';
	const char *host = strcmp(buf, "localhost") == 0 ? "127.0.0.1" : buf;
	struct sockaddr_in sa;
	char *pend;
	long port = strtol(colon + 1, &pend, 10);
	if (*pend != '\0' || port < 1 || port > 65535 || uv_ip4_addr(host, (int)port, &sa) != 0)
		return -1;
	if ((size_t)snprintf(out, outlen, "%s:%ld", host, port) >= outlen)
		return -1;
	return 0;
}

/* ---- requests ------------------------------------------------------------------ */

static void timer_closed(uv_handle_t *h)
{
	free(h);
}

static void stop_timer(struct fwd_req *r)
{
	if (r->timer) {
		uv_timer_stop(r->timer);
		uv_close((uv_handle_t *)r->timer, timer_closed);
		r->timer = NULL;
	}
}

static void finish(struct fwd_req *r, enum fwd_outcome outcome, const char *fmt, ...)
{
	stop_timer(r);
	r->conn = NULL;
	r->outcome = outcome;
	if (outcome != FWD_OK) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->err, sizeof(r->err), fmt, ap);
		va_end(ap);
		r->fwd->failed++;
	}
	r->cb(r);
}

/* Requests waiting for a connection to their host, in arrival order. */
static void waiting_remove(struct fwd *f, struct fwd_req *r)
{
	for (struct fwd_req **pp = &f->pending; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			r->next = NULL;
			return;
		}
}

/* ---- connections ------------------------------------------------------------------ */

static void conn_closed(uv_handle_t *h)
{
	struct fwd_conn *c = h->data;
	free(c->head);
	free(c->rbuf);
	free(c);
}

static void conn_close(struct fwd_conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	for (struct fwd_conn **pp = &c->fwd->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* The request on c ended without an answer. It is never sent again: a server
 * that read it may have acted on it before the connection broke (a write sent
 * twice could create two objects). Kept-alive connections are reused only while
 * fresh (FWD_IDLE_MAX_MS), well before latticed closes idle ones. */
static void conn_fail(struct fwd_conn *c, const char *why)
{
	struct fwd_req *r = c->req;
	c->req = NULL;
	conn_close(c);
	if (r != NULL)
		finish(r, FWD_NO_ANSWER, "%s: %s", r->hostport, why);
}

static void conn_idle(struct fwd_conn *c);

static int header_is(const char *line, size_t len, const char *name, const char **val)
{
	size_t n = strlen(name);
	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return 0;
	const char *v = line + n + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	*val = v;
	return 1;
}

static void copy_value(char *out, size_t outlen, const char *v, const char *eol)
{
	size_t n = (size_t)(eol - v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

/* Parses the response head in c->rbuf[0..head_len). Returns 0 or -1. */
static int parse_head(struct fwd_conn *c, struct fwd_req *r)
{
	const char *p = c->rbuf, *end = c->rbuf + c->head_len;
	const char *eol = memchr(p, '\r', (size_t)(end - p));
	if (eol == NULL || eol - p < 12 || strncmp(p, "HTTP/1.", 7) != 0)
		return -1;
	int status = atoi(p + 9);
	if (status < 100 || status > 599)
		return -1;
	r->status = status;
	bool have_length = false;
	for (p = eol + 2; p < end - 2; p = eol + 2) {
		eol = memchr(p, '\r', (size_t)(end - p));
		if (eol == NULL)
			return -1;
		size_t len = (size_t)(eol - p);
		const char *v;
		char tmp[32];
		if (header_is(p, len, "Content-Length", &v)) {
			copy_value(tmp, sizeof(tmp), v, eol);
			char *e;
			unsigned long long n = strtoull(tmp, &e, 10);
			if (*e != '\0' || e == tmp || n > FWD_BODY_MAX)
				return -1;
			c->content_length = (size_t)n;
			have_length = true;
		} else if (header_is(p, len, "Transfer-Encoding", &v)) {
			return -1; /* latticed never sends chunked answers */
		} else if (header_is(p, len, "Connection", &v)) {
			copy_value(tmp, sizeof(tmp), v, eol);
			if (strcasecmp(tmp, "close") == 0)
				c->close_after = true;
		} else if (header_is(p, len, "X-Lattice-Index", &v)) {
			copy_value(tmp, sizeof(tmp), v, eol);
			r->index = strtoull(tmp, NULL, 10);
		} else if (header_is(p, len, "Location", &v)) {
			copy_value(r->location, sizeof(r->location), v, eol);
		} else if (header_is(p, len, "Retry-After", &v)) {
			copy_value(r->retry_after, sizeof(r->retry_after), v, eol);
		} else if (header_is(p, len, "Content-Type", &v)) {
			copy_value(r->content_type_out, sizeof(r->content_type_out), v, eol);
		}
	}
	if (!have_length)
		c->content_length = 0;
	return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct fwd_conn *c = h->data;
	(void)suggested;
	if (c->rcap - c->rlen < 16384) {
		size_t cap = c->rcap ? c->rcap * 2 : 32768;
		char *nb = realloc(c->rbuf, cap + 1);
		if (nb == NULL) {
			*buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
			return;
		}
		c->rbuf = nb;
		c->rcap = cap;
	}
	*buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct fwd_conn *c = s->data;
	(void)buf;
	if (nread < 0) {
		conn_fail(c, nread == UV_EOF ? "connection closed before the answer" : uv_strerror((int)nread));
		return;
	}
	if (nread == 0)
		return;
	struct fwd_req *r = c->req;
	if (r == NULL) { /* bytes nobody asked for */
		conn_close(c);
		return;
	}
	c->rlen += (size_t)nread;
	c->rbuf[c->rlen] = '\0';
	if (c->head_len == 0) {
		char *e = strstr(c->rbuf, "\r\n\r\n");
		if (e == NULL) {
			if (c->rlen > FWD_HEAD_MAX)
				conn_fail(c, "response headers too large");
			return;
		}
		c->head_len = (size_t)(e - c->rbuf) + 4;
		if (parse_head(c, r) != 0) {
			conn_fail(c, "malformed response");
			return;
		}
	}
	if (c->rlen < c->head_len + c->content_length)
		return;
	if (c->rlen > c->head_len + c->content_length) {
		conn_fail(c, "more bytes than the answer's Content-Length");
		return;
	}
	char *body = malloc(c->content_length + 1);
	if (body == NULL) {
		conn_fail(c, "out of memory");
		return;
	}
	memcpy(body, c->rbuf + c->head_len, c->content_length);
	body[c->content_length] = '\0';
	r->body_out = body;
	r->body_out_len = c->content_length;
	c->req = NULL;
	c->rlen = c->head_len = c->content_length = 0;
	if (c->close_after || c->fwd->closing)
		conn_close(c);
	else
		conn_idle(c);
	c->fwd->sent++;
	finish(r, FWD_OK, "%s", "");
}

static void on_written(uv_write_t *w, int status)
{
	struct fwd_conn *c = w->data;
	free(c->head);
	c->head = NULL;
	if (status != 0 && c->state != CONN_CLOSING)
		conn_fail(c, uv_strerror(status));
}

static void conn_start(struct fwd_conn *c, struct fwd_req *r)
{
	c->state = CONN_BUSY;
	c->req = r;
	r->conn = c;
	c->rlen = c->head_len = c->content_length = 0;
	c->close_after = false;
	size_t cap = 512 + strlen(r->target) + (r->extra_headers ? strlen(r->extra_headers) : 0);
	c->head = malloc(cap);
	if (c->head == NULL) {
		c->req = NULL;
		conn_close(c);
		finish(r, FWD_NOT_SENT, "out of memory");
		return;
	}
	int n = snprintf(c->head, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", r->method, r->target, c->hostport);
	if (r->content_type)
		n += snprintf(c->head + n, cap - (size_t)n, "Content-Type: %s\r\n", r->content_type);
	if (r->body || strcmp(r->method, "GET") != 0)
		n += snprintf(c->head + n, cap - (size_t)n, "Content-Length: %zu\r\n", r->body ? r->body_len : 0);
	n += snprintf(c->head + n, cap - (size_t)n, "%s\r\n", r->extra_headers ? r->extra_headers : "");
	uv_buf_t bufs[2] = {uv_buf_init(c->head, (unsigned)n),
			    uv_buf_init((char *)(r->body ? r->body : ""), (unsigned)(r->body ? r->body_len : 0))};
	c->wreq.data = c;
	int rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, r->body && r->body_len ? 2 : 1, on_written);
	if (rv != 0) {
		free(c->head);
		c->head = NULL;
		conn_fail(c, uv_strerror(rv));
	}
}

/* c finished a request: hand it the next one waiting for its host. */
static void conn_idle(struct fwd_conn *c)
{
	c->state = CONN_IDLE;
	c->idle_since = uv_now(c->fwd->loop);
	for (struct fwd_req **pp = &c->fwd->pending; *pp; pp = &(*pp)->next) {
		struct fwd_req *r = *pp;
		if (strcmp(r->hostport, c->hostport) == 0) {
			*pp = r->next;
			r->next = NULL;
			conn_start(c, r);
			return;
		}
	}
}

static void on_connect(uv_connect_t *cr, int status)
{
	struct fwd_conn *c = cr->data;
	if (c->state == CONN_CLOSING)
		return;
	struct fwd_req *r = c->req;
	if (status != 0) {
		c->req = NULL;
		conn_close(c);
		if (r)
			finish(r, FWD_NOT_SENT, "cannot connect to %s: %s", c->hostport, uv_strerror(status));
		return;
	}
	int rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (rv != 0) {
		c->req = NULL;
		conn_close(c);
		if (r)
			finish(r, FWD_NOT_SENT, "%s: %s", c->hostport, uv_strerror(rv));
		return;
	}
	if (r)
		conn_start(c, r);
	else
		conn_idle(c);
}

static struct fwd_conn *conn_new(struct fwd *f, struct fwd_req *r)
{
	struct sockaddr_in sa;
	char host[64];
	snprintf(host, sizeof(host), "%s", r->hostport);
	char *colon = strrchr(host, ':');
	*colon = '\0';
	if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0)
		return NULL;
	struct fwd_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->fwd = f;
	snprintf(c->hostport, sizeof(c->hostport), "%s", r->hostport);
	uv_tcp_init(f->loop, &c->tcp);
	c->tcp.data = c;
	uv_tcp_nodelay(&c->tcp, 1);
	c->state = CONN_CONNECTING;
	c->req = r;
	r->conn = c;
	c->creq.data = c;
	c->next = f->conns;
	f->conns = c;
	int rv = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&sa, on_connect);
	if (rv != 0) {
		c->req = NULL;
		r->conn = NULL;
		conn_close(c);
		return NULL;
	}
	return c;
}

static void on_timeout(uv_timer_t *t)
{
	struct fwd_req *r = t->data;
	struct fwd_conn *c = r->conn;
	if (c == NULL) { /* still waiting for a connection */
		waiting_remove(r->fwd, r);
		finish(r, FWD_NOT_SENT, "%s: no connection within %lld ms", r->hostport, (long long)r->timeout_ms);
		return;
	}
	bool connecting = c->state == CONN_CONNECTING;
	c->req = NULL;
	conn_close(c);
	if (connecting)
		finish(r, FWD_NOT_SENT, "%s: cannot connect within %lld ms", r->hostport, (long long)r->timeout_ms);
	else
		finish(r, FWD_NO_ANSWER, "%s: no answer within %lld ms", r->hostport, (long long)r->timeout_ms);
}

static void dispatch(struct fwd *f, struct fwd_req *r)
{
	unsigned same = 0;
	uint64_t now = uv_now(f->loop);
	for (struct fwd_conn *c = f->conns, *next; c; c = next) {
		next = c->next;
		if (strcmp(c->hostport, r->hostport) != 0)
			continue;
		if (c->state == CONN_IDLE && now - c->idle_since > FWD_IDLE_MAX_MS) {
			conn_close(c); /* stale: the server may be closing it right now */
			continue;
		}
		if (c->state == CONN_IDLE) {
			conn_start(c, r);
			return;
		}
		same++;
	}
	if (same < f->max_per_host) {
		if (conn_new(f, r) == NULL)
			finish(r, FWD_NOT_SENT, "cannot open a connection to %s", r->hostport);
		return;
	}
	/* Wait for one of the connections to that host (in order). */
	struct fwd_req **pp = &f->pending;
	while (*pp)
		pp = &(*pp)->next;
	r->next = NULL;
	*pp = r;
}

/* ---- requests that fail before any I/O: their cb must not run inside fwd_send -- */

static void kick_cb(uv_idle_t *h)
{
	struct fwd *f = h->data;
	uv_idle_stop(h);
	struct fwd_req *list = f->early;
	f->early = NULL;
	while (list) {
		struct fwd_req *next = list->next;
		list->next = NULL;
		finish(list, list->outcome, "%s", list->err);
		list = next;
	}
}

static void fail_later(struct fwd *f, struct fwd_req *r, const char *why)
{
	r->outcome = FWD_NOT_SENT;
	snprintf(r->err, sizeof(r->err), "%s", why);
	r->next = f->early;
	f->early = r;
	uv_idle_start(&f->kick, kick_cb);
}

void fwd_send(struct fwd *f, const char *base_url, struct fwd_req *r)
{
	r->fwd = f;
	r->outcome = FWD_NO_ANSWER;
	r->err[0] = '\0';
	r->status = 0;
	r->index = 0;
	r->location[0] = r->retry_after[0] = r->content_type_out[0] = '\0';
	r->body_out = NULL;
	r->body_out_len = 0;
	r->conn = NULL;
	r->timer = NULL;
	r->next = NULL;
	if (f->closing) {
		fail_later(f, r, "this replica is shutting down");
		return;
	}
	if (fwd_hostport(base_url, r->hostport, sizeof(r->hostport)) != 0) {
		char why[160];
		snprintf(why, sizeof(why), "'%.100s' is not an http://IP:PORT URL", base_url);
		fail_later(f, r, why);
		return;
	}
	r->timer = malloc(sizeof(*r->timer));
	if (r->timer == NULL) {
		fail_later(f, r, "out of memory");
		return;
	}
	uv_timer_init(f->loop, r->timer);
	r->timer->data = r;
	uv_timer_start(r->timer, on_timeout, (uint64_t)(r->timeout_ms > 0 ? r->timeout_ms : 1), 0);
	dispatch(f, r);
}

void fwd_req_release(struct fwd_req *r)
{
	free(r->body_out);
	r->body_out = NULL;
	r->body_out_len = 0;
}

int fwd_init(struct fwd *f, uv_loop_t *loop)
{
	memset(f, 0, sizeof(*f));
	f->loop = loop;
	f->max_per_host = FWD_MAX_PER_HOST;
	int rv = uv_idle_init(loop, &f->kick);
	if (rv != 0)
		return rv;
	f->kick.data = f;
	return 0;
}

void fwd_close(struct fwd *f)
{
	f->closing = true;
	while (f->pending) {
		struct fwd_req *r = f->pending;
		f->pending = r->next;
		r->next = NULL;
		finish(r, FWD_NOT_SENT, "this replica is shutting down");
	}
	while (f->conns) {
		struct fwd_conn *c = f->conns;
		struct fwd_req *r = c->req;
		bool connecting = c->state == CONN_CONNECTING;
		c->req = NULL;
		conn_close(c);
		if (r)
			finish(r, connecting ? FWD_NOT_SENT : FWD_NO_ANSWER, "this replica is shutting down");
	}
	kick_cb(&f->kick);
	uv_close((uv_handle_t *)&f->kick, NULL);
}
