/* httpc — see httpc.h. */
#define _GNU_SOURCE /* MSG_NOSIGNAL, SOCK_NONBLOCK, strcasecmp, memmem */
#include "httpc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A body longer than this, with its chunk lines and head, is refused. */
#define BUF_MAX ((size_t)HTTPC_BODY_MAX + 4 * HTTPC_HEAD_MAX)

struct conn {
	int fd;
	int64_t deadline; /* monotonic ms */
	char *buf;        /* what was received; [pos, len) not consumed yet */
	size_t len, pos, cap;
	char *err;
	size_t errlen;
};

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

__attribute__((format(printf, 3, 4))) static int fail(struct conn *c, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* Until fd is ready for ev, or the deadline. 0, or HTTPC_TIMEOUT. */
static int wait_fd(struct conn *c, short ev, const char *doing)
{
	for (;;) {
		int64_t left = c->deadline - now_ms();
		if (left <= 0)
			return fail(c, HTTPC_TIMEOUT, "no answer within the deadline (%s)", doing);
		struct pollfd p = {.fd = c->fd, .events = ev};
		int n = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
		if (n > 0)
			return 0; /* ready, or an error the next call reports */
		if (n < 0 && errno != EINTR)
			return fail(c, HTTPC_RESET, "poll: %s", strerror(errno));
	}
}

/* ---- the URL and the connection -------------------------------------------------- */

static int parse_base(const char *url, char *host, size_t hostlen, char *port, size_t portlen)
{
	if (strncmp(url, "http://", 7) != 0)
		return -1;
	const char *h = url + 7, *he, *p;
	if (*h == '[') { /* an IPv6 literal */
		he = strchr(h, ']');
		if (!he)
			return -1;
		h++;
		p = he + 1;
	} else {
		he = h + strcspn(h, ":/");
		p = he;
	}
	if (he == h || (size_t)(he - h) >= hostlen)
		return -1;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	if (*p == ':') {
		p++;
		size_t n = strspn(p, "0123456789");
		if (n == 0 || n >= portlen)
			return -1;
		memcpy(port, p, n);
		port[n] = '\0';
		p += n;
	} else {
		snprintf(port, portlen, "80");
	}
	return *p == '\0' || strcmp(p, "/") == 0 ? 0 : -1;
}

static int open_conn(struct conn *c, const char *base_url)
{
	char host[256], port[8];
	if (parse_base(base_url, host, sizeof(host), port, sizeof(port)) != 0)
		return fail(c, HTTPC_BAD_REQUEST, "bad base URL '%s': want http://HOST:PORT", base_url);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST};
	struct addrinfo *ai = NULL;
	int g = getaddrinfo(host, port, &hints, &ai);
	if (g == EAI_NONAME) { /* not a literal: look the name up (not bounded by the deadline) */
		hints.ai_flags = AI_NUMERICSERV;
		g = getaddrinfo(host, port, &hints, &ai);
	}
	if (g != 0)
		return fail(c, HTTPC_BAD_REQUEST, "cannot resolve '%s': %s", host, gai_strerror(g));
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		int e = errno;
		freeaddrinfo(ai);
		return fail(c, HTTPC_BAD_REQUEST, "socket: %s", strerror(e));
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int rv = connect(c->fd, ai->ai_addr, ai->ai_addrlen);
	int e = errno;
	freeaddrinfo(ai);
	if (rv != 0 && e != EINPROGRESS && e != EINTR)
		return fail(c, HTTPC_REFUSED, "connect to %s:%s: %s", host, port, strerror(e));
	if (rv != 0) {
		int w = wait_fd(c, POLLOUT, "connecting");
		if (w != 0)
			return w;
		socklen_t sl = sizeof(e);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
			e = errno;
		if (e != 0)
			return fail(c, HTTPC_REFUSED, "connect to %s:%s: %s", host, port, strerror(e));
	}
	return 0;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(c, POLLOUT, "sending");
			if (rc != 0)
				return rc;
			continue;
		}
		return fail(c, HTTPC_RESET, "sending: %s", w < 0 ? strerror(errno) : "connection closed");
	}
	return 0;
}

/* ---- reading ----------------------------------------------------------------------- */

/* Reads more. >0 bytes, 0 at the end of the stream, or an httpc_error. */
static int fill(struct conn *c)
{
	if (c->len == c->cap) {
		if (c->cap >= BUF_MAX)
			return fail(c, HTTPC_BAD_ANSWER, "answer over %zu bytes", BUF_MAX);
		size_t nc = c->cap ? c->cap * 2 : 16384;
		if (nc > BUF_MAX)
			nc = BUF_MAX;
		char *nb = realloc(c->buf, nc + 1);
		if (!nb)
			return fail(c, HTTPC_BAD_ANSWER, "out of memory reading the answer");
		c->buf = nb;
		c->cap = nc;
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n > 0) {
			c->len += (size_t)n;
			return (int)n;
		}
		if (n == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int rc = wait_fd(c, POLLIN, "receiving");
			if (rc != 0)
				return rc;
			continue;
		}
		return fail(c, HTTPC_RESET, "receiving: %s", strerror(errno));
	}
}

/* Until n unread bytes are there. 0, or an httpc_error (the end of the
 * stream before them: HTTPC_RESET, a cut answer). */
static int need(struct conn *c, size_t n)
{
	while (c->len - c->pos < n) {
		int r = fill(c);
		if (r < 0)
			return r;
		if (r == 0)
			return fail(c, HTTPC_RESET, "the connection closed in the middle of the answer");
	}
	return 0;
}

/* The next line (without its CRLF; a bare LF is accepted) at *off in buf,
 * its length in *n; consumed. 0, or an httpc_error. */
static int line(struct conn *c, size_t max, size_t *off, size_t *n)
{
	size_t scan = c->pos;
	for (;;) {
		char *nl = c->len > scan ? memchr(c->buf + scan, '\n', c->len - scan) : NULL;
		if (nl) {
			size_t end = (size_t)(nl - c->buf);
			*off = c->pos;
			*n = end - c->pos;
			if (*n > 0 && c->buf[end - 1] == '\r')
				(*n)--;
			c->pos = end + 1;
			return 0;
		}
		scan = c->len;
		if (c->len - c->pos > max)
			return fail(c, HTTPC_BAD_ANSWER, "a line over %zu bytes", max);
		int r = fill(c);
		if (r < 0)
			return r;
		if (r == 0)
			return fail(c, HTTPC_RESET, "the connection closed in the middle of the answer");
	}
}

static int append(struct conn *c, char **out, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n > HTTPC_BODY_MAX)
		return fail(c, HTTPC_BAD_ANSWER, "body over %u bytes", HTTPC_BODY_MAX);
	if (*len + n + 1 > *cap) {
		size_t nc = *cap ? *cap : 4096;
		while (nc < *len + n + 1)
			nc *= 2;
		char *nb = realloc(*out, nc);
		if (!nb)
			return fail(c, HTTPC_BAD_ANSWER, "out of memory reading the body");
		*out = nb;
		*cap = nc;
	}
	memcpy(*out + *len, p, n);
	*len += n;
	(*out)[*len] = '\0';
	return 0;
}

static void copy_value(char *dst, size_t dstlen, const char *v, size_t n)
{
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

struct head {
	int status;
	bool chunked, has_length;
	uint64_t length;
};

/* The status line and headers. 0, or an httpc_error. */
static int read_head(struct conn *c, struct head *h, struct httpc_resp *r)
{
	size_t off, n, total = 0;
	int rc = line(c, HTTPC_HEAD_MAX, &off, &n);
	if (rc != 0)
		return rc;
	const char *s = c->buf + off;
	/* "HTTP/1.x SSS reason" */
	if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ' || s[9] < '1' || s[9] > '5' || s[10] < '0' ||
	    s[10] > '9' || s[11] < '0' || s[11] > '9' || (n > 12 && s[12] != ' '))
		return fail(c, HTTPC_BAD_ANSWER, "not an HTTP/1.x status line: '%.*s'", (int)(n > 80 ? 80 : n), s);
	h->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	for (;;) {
		if ((rc = line(c, HTTPC_HEAD_MAX, &off, &n)) != 0)
			return rc;
		if (n == 0)
			return 0;
		if ((total += n) > HTTPC_HEAD_MAX)
			return fail(c, HTTPC_BAD_ANSWER, "headers over %u bytes", HTTPC_HEAD_MAX);
		char *name = c->buf + off;
		char *colon = memchr(name, ':', n);
		if (!colon || colon == name)
			return fail(c, HTTPC_BAD_ANSWER, "a header line without a name: '%.*s'", (int)(n > 80 ? 80 : n),
				    name);
		size_t nl = (size_t)(colon - name);
		char *v = colon + 1, *ve = name + n;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		size_t vl = (size_t)(ve - v);
#define IS(k) (nl == sizeof(k) - 1 && strncasecmp(name, k, nl) == 0)
		if (IS("Content-Length")) {
			uint64_t len = 0;
			if (vl == 0 || vl > 15)
				return fail(c, HTTPC_BAD_ANSWER, "bad Content-Length");
			for (size_t i = 0; i < vl; i++) {
				if (v[i] < '0' || v[i] > '9')
					return fail(c, HTTPC_BAD_ANSWER, "bad Content-Length");
				len = len * 10 + (uint64_t)(v[i] - '0');
			}
			if (h->has_length && h->length != len)
				return fail(c, HTTPC_BAD_ANSWER, "two different Content-Length headers");
			h->has_length = true;
			h->length = len;
		} else if (IS("Transfer-Encoding")) {
			/* chunked must be the last coding; we ask for no other */
			h->chunked = vl >= 7 && strncasecmp(ve - 7, "chunked", 7) == 0;
			if (!h->chunked)
				return fail(c, HTTPC_BAD_ANSWER, "Transfer-Encoding '%.*s' not understood", (int)vl, v);
		} else if (IS("X-Lattice-Index")) {
			uint64_t x = 0;
			size_t i = 0;
			for (; i < vl && i < 20 && v[i] >= '0' && v[i] <= '9'; i++)
				x = x * 10 + (uint64_t)(v[i] - '0');
			if (i > 0 && i == vl) {
				r->has_index = true;
				r->index = x;
			}
		} else if (IS("Location")) {
			copy_value(r->location, sizeof(r->location), v, vl);
		} else if (IS("Retry-After")) {
			copy_value(r->retry_after, sizeof(r->retry_after), v, vl);
		} else if (IS("Content-Type")) {
			copy_value(r->content_type, sizeof(r->content_type), v, vl);
		}
#undef IS
	}
}

static int read_chunked(struct conn *c, char **out, size_t *len, size_t *cap)
{
	for (;;) {
		size_t off, n;
		int rc = line(c, 1024, &off, &n);
		if (rc != 0)
			return rc;
		uint64_t size = 0;
		size_t i = 0;
		for (; i < n && i < 9; i++) {
			char ch = c->buf[off + i];
			int d = ch >= '0' && ch <= '9' ? ch - '0'
				: ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
				: ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
							 : -1;
			if (d < 0)
				break;
			size = size * 16 + (uint64_t)d;
		}
		if (i == 0 || (i < n && c->buf[off + i] != ';' && c->buf[off + i] != ' ' && c->buf[off + i] != '\t'))
			return fail(c, HTTPC_BAD_ANSWER, "bad chunk size line '%.*s'", (int)(n > 40 ? 40 : n), c->buf + off);
		if (size == 0) { /* trailers up to an empty line */
			do {
				if ((rc = line(c, HTTPC_HEAD_MAX, &off, &n)) != 0)
					return rc;
			} while (n > 0);
			return 0;
		}
		if (size > HTTPC_BODY_MAX)
			return fail(c, HTTPC_BAD_ANSWER, "chunk over %u bytes", HTTPC_BODY_MAX);
		if ((rc = need(c, (size_t)size + 2)) != 0)
			return rc;
		if ((rc = append(c, out, len, cap, c->buf + c->pos, (size_t)size)) != 0)
			return rc;
		c->pos += (size_t)size;
		if (c->buf[c->pos] == '\r' && c->buf[c->pos + 1] == '\n')
			c->pos += 2;
		else
			return fail(c, HTTPC_BAD_ANSWER, "a chunk not followed by CRLF");
	}
}

static int read_answer(struct conn *c, const char *method, struct httpc_resp *r)
{
	struct head h;
	int rc;
	do { /* 1xx answers (100 Continue...) come before the real one */
		memset(&h, 0, sizeof(h));
		if ((rc = read_head(c, &h, r)) != 0)
			return rc;
	} while (h.status < 200);
	char *out = NULL;
	size_t len = 0, cap = 0;
	if ((rc = append(c, &out, &len, &cap, "", 0)) != 0)
		return rc;
	if (strcmp(method, "HEAD") == 0 || h.status == 204 || h.status == 304) {
		/* no body */
	} else if (h.chunked) {
		rc = read_chunked(c, &out, &len, &cap);
	} else if (h.has_length) {
		if (h.length > HTTPC_BODY_MAX)
			rc = fail(c, HTTPC_BAD_ANSWER, "body over %u bytes", HTTPC_BODY_MAX);
		else if ((rc = need(c, (size_t)h.length)) == 0)
			rc = append(c, &out, &len, &cap, c->buf + c->pos, (size_t)h.length);
	} else { /* to the end of the stream */
		for (;;) {
			if (c->len > c->pos) {
				if ((rc = append(c, &out, &len, &cap, c->buf + c->pos, c->len - c->pos)) != 0)
					break;
				c->pos = c->len = 0;
			}
			int f = fill(c);
			if (f <= 0) {
				rc = f;
				break;
			}
		}
	}
	if (rc != 0) {
		free(out);
		return rc;
	}
	r->status = h.status;
	r->body = out;
	r->body_len = len;
	return h.status;
}

/* ---- the call ---------------------------------------------------------------------- */

static bool token(const char *s, const char *extra)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || strchr(extra, *s))
			return false;
	return true;
}

/* The extra header lines as one block of "line\r\n"s (malloc'd; "" for none),
 * each checked to be "Name: value" without control characters, so a value from
 * a config file cannot smuggle in a header or a second request. *has_ua: one of
 * them is a User-Agent (it replaces ours). NULL when one is bad or memory ran out
 * (err says which). */
static char *extra_block(struct conn *c, const char *const *headers, bool *has_ua)
{
	size_t total = 1;
	*has_ua = false;
	for (size_t i = 0; headers && headers[i]; i++) {
		const char *h = headers[i], *colon = strchr(h, ':');
		size_t nl = colon ? (size_t)(colon - h) : 0;
		bool good = colon && nl > 0;
		for (size_t k = 0; good && h[k]; k++) {
			unsigned char ch = (unsigned char)h[k];
			if (k < nl) /* the name is a token: no space, no separator */
				good = ch > 0x20 && ch < 0x7f && !strchr("()<>@,;:\\\"/[]?={}", ch);
			else /* the value: no control character but a tab */
				good = (ch >= 0x20 || ch == '\t') && ch != 0x7f;
		}
		if (!good) {
			/* the name only: the value may be a secret */
			fail(c, HTTPC_BAD_REQUEST,
			     "extra header %zu is not 'Name: value' on one line without control characters", i + 1);
			return NULL;
		}
		if (nl == 10 && strncasecmp(h, "User-Agent", 10) == 0)
			*has_ua = true;
		total += strlen(h) + 2;
	}
	char *out = malloc(total);
	if (!out) {
		fail(c, HTTPC_BAD_REQUEST, "out of memory");
		return NULL;
	}
	size_t w = 0;
	for (size_t i = 0; headers && headers[i]; i++) {
		size_t n = strlen(headers[i]);
		memcpy(out + w, headers[i], n);
		memcpy(out + w + n, "\r\n", 2);
		w += n + 2;
	}
	out[w] = '\0';
	return out;
}

/* httpc_do and httpc_do_ex: headers NULL sends exactly what httpc_do always has. */
static int exchange(const char *base_url, const char *method, const char *path, const char *body,
		    const char *const *headers, int timeout_ms, struct httpc_resp *r, bool *sent, char *err,
		    size_t errlen)
{
	memset(r, 0, sizeof(*r));
	if (sent)
		*sent = false;
	struct conn c = {.fd = -1, .deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0), .err = err, .errlen = errlen};
	if (errlen)
		err[0] = '\0';
	if (!token(method, "()<>@,;:\\\"/[]?={}") || path[0] != '/' || !token(path, ""))
		return fail(&c, HTTPC_BAD_REQUEST, "bad method '%s' or path '%s'", method, path);
	bool has_ua = false;
	char *extra = extra_block(&c, headers, &has_ua);
	if (!extra)
		return HTTPC_BAD_REQUEST;
	int rc = open_conn(&c, base_url);
	if (rc == 0) {
		/* Host is what base_url says after http:// */
		const char *host = base_url + 7;
		size_t hl = strcspn(host, "/");
		bool write = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
		size_t blen = body ? strlen(body) : 0;
		char clen[96] = "";
		if (body || write) /* a write without a body says so (Content-Length: 0) */
			snprintf(clen, sizeof(clen), "%sContent-Length: %zu\r\n",
				 body ? "Content-Type: application/json\r\n" : "", blen);
		char *req = NULL;
		int n = asprintf(&req,
				 "%s %s HTTP/1.1\r\nHost: %.*s\r\n%sAccept: application/json\r\n"
				 "Connection: close\r\n%s%s\r\n",
				 method, path, (int)hl, host, has_ua ? "" : "User-Agent: lattice-sim\r\n", extra, clen);
		if (n < 0) {
			rc = fail(&c, HTTPC_BAD_REQUEST, "out of memory");
		} else {
			if (sent) /* from here on the server may see some of it */
				*sent = true;
			if ((rc = send_all(&c, req, (size_t)n)) == 0 && blen > 0)
				rc = send_all(&c, body, blen);
			free(req);
		}
		if (rc == 0)
			rc = read_answer(&c, method, r);
	}
	free(extra);
	if (c.fd >= 0)
		close(c.fd);
	free(c.buf);
	if (rc < 0) {
		free(r->body);
		memset(r, 0, sizeof(*r));
	}
	return rc;
}

int httpc_do(const char *base_url, const char *method, const char *path, const char *body, int timeout_ms,
	     struct httpc_resp *r, char *err, size_t errlen)
{
	return exchange(base_url, method, path, body, NULL, timeout_ms, r, NULL, err, errlen);
}

int httpc_do_ex(const char *base_url, const char *method, const char *path, const char *body,
		const char *const *headers, int timeout_ms, struct httpc_resp *r, bool *sent, char *err,
		size_t errlen)
{
	return exchange(base_url, method, path, body, headers, timeout_ms, r, sent, err, errlen);
}

void httpc_resp_free(struct httpc_resp *r)
{
	if (!r)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
}

const char *httpc_error_name(int rc)
{
	switch (rc) {
	case HTTPC_TIMEOUT: return "timeout";
	case HTTPC_REFUSED: return "refused";
	case HTTPC_RESET: return "reset";
	case HTTPC_BAD_ANSWER: return "bad_answer";
	case HTTPC_BAD_REQUEST: return "bad_request";
	default: return NULL;
	}
}
