/* test_httpc — sim/httpc.c against tiny servers of this file on 127.0.0.1:
 * each accepts one connection, reads the request and answers in one way
 * (Content-Length, chunked in pieces, to the close, 1xx first, 204 held open,
 * never, a byte at a time, cut short, not HTTP). Timeouts here only guard
 * hangs; "within the deadline" is checked against a bound many times the
 * deadline, so a slow machine does not fail it. httpc_do_ex (latticectl's
 * extra headers and "was anything sent") is checked at the end. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpc.h"
#include "tap.h"

enum mode { M_LENGTH, M_CHUNKED, M_EOF, M_CONTINUE, M_204_OPEN, M_SILENT, M_TRICKLE, M_CUT, M_GARBAGE };

struct server {
	enum mode mode;
	int lfd;
	char url[64];
	char request[8192]; /* what the client sent: head and body */
	size_t request_len;
	pthread_t th;
};

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void send_str(int fd, const char *s)
{
	size_t n = strlen(s);
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Until the client closes (or 30 s: a guard). */
static void hold(int fd)
{
	char b[256];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int64_t end = now_ms() + 30000;
	while (now_ms() < end && poll(&p, 1, 100) >= 0)
		if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && recv(fd, b, sizeof(b), 0) <= 0)
			return;
}

static void read_request(struct server *s, int fd)
{
	while (s->request_len < sizeof(s->request) - 1) {
		ssize_t n = recv(fd, s->request + s->request_len, sizeof(s->request) - 1 - s->request_len, 0);
		if (n <= 0)
			break;
		s->request_len += (size_t)n;
		s->request[s->request_len] = '\0';
		const char *end = strstr(s->request, "\r\n\r\n");
		const char *cl = strcasestr(s->request, "Content-Length: ");
		if (end && s->request_len >= (size_t)(end + 4 - s->request) + (cl ? (size_t)atoi(cl + 16) : 0))
			break;
	}
}

static void *serve(void *arg)
{
	struct server *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	read_request(s, fd);
	switch (s->mode) {
	case M_LENGTH:
		send_str(fd, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Lattice-Index: 4711\r\n"
			     "Location: /v1/actors/w-0001\r\ncontent-length: 16\r\n\r\n{\"id\":\"w-0001\"}\n");
		break;
	case M_CHUNKED:
		send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 1\r\n\r\n");
		usleep(20000);
		send_str(fd, "5\r\nhel");
		usleep(20000);
		send_str(fd, "lo\r\n6;ext=1\r\n world\r\n");
		usleep(20000);
		send_str(fd, "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n");
		break;
	case M_EOF:
		send_str(fd, "HTTP/1.0 503 Service Unavailable\r\nConnection: close\r\n\r\n{\"error\":{\"code\":\"no_leader\"}}");
		break;
	case M_CONTINUE:
		send_str(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok");
		break;
	case M_204_OPEN: /* no body, and the connection left open: the client must not wait for its end */
		send_str(fd, "HTTP/1.1 204 No Content\r\nX-Lattice-Index: 7\r\n\r\n");
		hold(fd);
		break;
	case M_SILENT:
		hold(fd);
		break;
	case M_TRICKLE: { /* a byte every 50 ms: each read makes progress, the whole never ends */
		const char *head = "HTTP/1.1 200 OK\r\nX-Padding: ";
		send_str(fd, head);
		int64_t end = now_ms() + 30000;
		while (now_ms() < end && send(fd, "x", 1, MSG_NOSIGNAL) == 1)
			usleep(50000);
		break;
	}
	case M_CUT:
		send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
		break;
	case M_GARBAGE:
		send_str(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
		break;
	}
	close(fd);
	return NULL;
}

static void server_start(struct server *s, enum mode m)
{
	memset(s, 0, sizeof(*s));
	s->mode = m;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->lfd, 4) != 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0) {
		perror("server");
		exit(2);
	}
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	pthread_create(&s->th, NULL, serve, s);
}

static void server_end(struct server *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
}

int main(void)
{
	tap_plan(54);
	struct server s;
	struct httpc_resp r;
	char err[256];
	int rc;

	/* Content-Length, the headers the workload reads, the request as sent. */
	server_start(&s, M_LENGTH);
	const char *body = "{\"id\":\"w-0001\",\"replicas\":2}";
	size_t blen = strlen(body);
	char clen[64];
	snprintf(clen, sizeof(clen), "\r\nContent-Length: %zu\r\n", blen);
	rc = httpc_do(s.url, "POST", "/v1/actors", body, 5000, &r, err, sizeof(err));
	server_end(&s);
	is_int(rc, 201, "Content-Length answer: the status (%s)", err);
	is_str(r.body, "{\"id\":\"w-0001\"}\n", "... the body");
	ok(r.has_index && r.index == 4711, "... X-Lattice-Index");
	is_str(r.location, "/v1/actors/w-0001", "... Location");
	is_str(r.content_type, "application/json", "... Content-Type");
	ok(strncmp(s.request, "POST /v1/actors HTTP/1.1\r\n", 26) == 0, "the request line as sent");
	ok(strstr(s.request, "\r\nContent-Type: application/json\r\n") && strstr(s.request, clen) &&
		   strstr(s.request, "\r\nConnection: close\r\n") && strstr(s.request, "\r\nHost: 127.0.0.1:"),
	   "its headers: Content-Type, Content-Length, Connection: close, Host");
	ok(s.request_len >= blen && strcmp(s.request + s.request_len - blen, body) == 0, "its body");
	httpc_resp_free(&r);

	/* Chunked, in pieces, with an extension and a trailer. */
	server_start(&s, M_CHUNKED);
	rc = httpc_do(s.url, "GET", "/v1/actors/w-0001?consistent=true", NULL, 5000, &r, err, sizeof(err));
	server_end(&s);
	is_int(rc, 200, "chunked answer: the status (%s)", err);
	is_str(r.body, "hello worldabcdefghijklmnopqrstuvwxyz", "... the body put together");
	is_int(r.body_len, 37, "... its length");
	is_str(r.retry_after, "1", "... Retry-After");
	ok(!r.has_index, "... no X-Lattice-Index");
	ok(strstr(s.request, "GET /v1/actors/w-0001?consistent=true HTTP/1.1\r\n") && !strstr(s.request, "Content-Length"),
	   "a GET without a body sends no Content-Length");
	httpc_resp_free(&r);

	/* A body up to the close (HTTP/1.0, no length). */
	server_start(&s, M_EOF);
	rc = httpc_do(s.url, "DELETE", "/v1/actors/w-0001", NULL, 5000, &r, err, sizeof(err));
	server_end(&s);
	is_int(rc, 503, "a body to the close: the status (%s)", err);
	is_str(r.body, "{\"error\":{\"code\":\"no_leader\"}}", "... the body");
	ok(strstr(s.request, "\r\nContent-Length: 0\r\n") && !strstr(s.request, "Content-Type"),
	   "a DELETE without a body says Content-Length: 0, no Content-Type");
	httpc_resp_free(&r);

	/* 100 Continue first. */
	server_start(&s, M_CONTINUE);
	rc = httpc_do(s.url, "POST", "/v1/actors/w-0001/migrate", NULL, 5000, &r, err, sizeof(err));
	server_end(&s);
	is_int(rc, 202, "a 1xx answer is skipped for the one after it (%s)", err);
	is_str(r.body, "ok", "... its body");
	httpc_resp_free(&r);

	/* 204 and the connection left open: answered at once, not at the deadline. */
	server_start(&s, M_204_OPEN);
	int64_t t0 = now_ms();
	rc = httpc_do(s.url, "DELETE", "/v1/actors/w-0001", NULL, 20000, &r, err, sizeof(err));
	int64_t took = now_ms() - t0;
	server_end(&s);
	is_int(rc, 204, "204 with the connection left open (%s)", err);
	ok(took < 15000, "... does not wait for the connection's end (%lld ms; the deadline was 20000)", (long long)took);
	ok(r.body && r.body[0] == '\0' && r.has_index && r.index == 7, "... an empty body, the index");
	httpc_resp_free(&r);

	/* A server that never answers: a timeout at the deadline. */
	server_start(&s, M_SILENT);
	t0 = now_ms();
	rc = httpc_do(s.url, "GET", "/v1/cluster", NULL, 300, &r, err, sizeof(err));
	took = now_ms() - t0;
	server_end(&s);
	is_int(rc, HTTPC_TIMEOUT, "a server that never answers: HTTPC_TIMEOUT (%s)", err);
	ok(took >= 290 && took < 5000, "... at the deadline of 300 ms (%lld ms)", (long long)took);
	ok(r.status == 0 && r.body == NULL, "... no status, no body");
	is_str(httpc_error_name(rc), "timeout", "... named timeout");

	/* Bytes trickling in: the deadline is for the whole exchange, not per read. */
	server_start(&s, M_TRICKLE);
	t0 = now_ms();
	rc = httpc_do(s.url, "GET", "/v1/cluster", NULL, 400, &r, err, sizeof(err));
	took = now_ms() - t0;
	server_end(&s);
	is_int(rc, HTTPC_TIMEOUT, "an answer trickling a byte every 50 ms: HTTPC_TIMEOUT (%s)", err);
	ok(took >= 390 && took < 5000, "... at the deadline of 400 ms (%lld ms)", (long long)took);

	/* Cut short: fewer bytes than Content-Length, then the close. */
	server_start(&s, M_CUT);
	rc = httpc_do(s.url, "GET", "/v1/cluster", NULL, 5000, &r, err, sizeof(err));
	server_end(&s);
	is_int(rc, HTTPC_RESET, "an answer cut short: HTTPC_RESET, not an answer (%s)", err);
	ok(r.status == 0 && r.body == NULL, "... no status, no body");

	/* Not HTTP. */
	server_start(&s, M_GARBAGE);
	rc = httpc_do(s.url, "GET", "/v1/cluster", NULL, 5000, &r, err, sizeof(err));
	server_end(&s);
	is_int(rc, HTTPC_BAD_ANSWER, "not HTTP: HTTPC_BAD_ANSWER (%s)", err);

	/* Connection refused: a port bound but not listening. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &al);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	t0 = now_ms();
	rc = httpc_do(url, "GET", "/v1/cluster", NULL, 20000, &r, err, sizeof(err));
	took = now_ms() - t0;
	close(fd);
	is_int(rc, HTTPC_REFUSED, "connection refused: HTTPC_REFUSED (%s)", err);
	ok(took < 15000, "... at once, not at the deadline (%lld ms)", (long long)took);
	ok(strstr(err, "refused") != NULL, "... the message says so: %s", err);

	/* httpc_do_ex: extra header lines go out as given, a User-Agent among them
	 * replaces httpc's, and sent says the request went. */
	server_start(&s, M_LENGTH);
	const char *hdrs[] = {"Authorization: Bearer t0k3n", "Idempotency-Key: k-1", "User-Agent: latticectl/9", NULL};
	bool sent = false;
	rc = httpc_do_ex(s.url, "POST", "/v1/nodes", "{}", hdrs, 5000, &r, &sent, err, sizeof(err));
	server_end(&s);
	is_int(rc, 201, "httpc_do_ex with extra headers: the status (%s)", err);
	ok(strstr(s.request, "\r\nAuthorization: Bearer t0k3n\r\n") && strstr(s.request, "\r\nIdempotency-Key: k-1\r\n"),
	   "... the extra header lines are sent as given");
	ok(strstr(s.request, "\r\nUser-Agent: latticectl/9\r\n") && !strstr(s.request, "lattice-sim"),
	   "... a User-Agent among them replaces httpc's own");
	ok(strstr(s.request, "\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}") != NULL,
	   "... the body still ends the request, after its Content-Type and Content-Length");
	ok(sent, "... sent is true");
	httpc_resp_free(&r);

	/* NULL headers: httpc_do's request exactly (its User-Agent, no other line). */
	server_start(&s, M_CHUNKED);
	rc = httpc_do_ex(s.url, "GET", "/v1/cluster", NULL, NULL, 5000, &r, NULL, err, sizeof(err));
	server_end(&s);
	char want[512];
	snprintf(want, sizeof(want),
		 "GET /v1/cluster HTTP/1.1\r\nHost: %s\r\nUser-Agent: lattice-sim\r\nAccept: application/json\r\n"
		 "Connection: close\r\n\r\n",
		 strchr(s.url, '/') + 2);
	is_int(rc, 200, "httpc_do_ex without headers (%s)", err);
	is_str(s.request, want, "... sends byte for byte what httpc_do sends");
	httpc_resp_free(&r);

	/* A bad header line: nothing is sent, not even a connection. */
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t lal = sizeof(la);
	bind(lfd, (struct sockaddr *)&la, sizeof(la));
	listen(lfd, 4);
	getsockname(lfd, (struct sockaddr *)&la, &lal);
	char lurl[64];
	snprintf(lurl, sizeof(lurl), "http://127.0.0.1:%d", ntohs(la.sin_port));
	const char *const bad[][2] = {
		{"Authorization: Bearer x\r\nX-Smuggled: 1", "a CRLF in a value"},
		{"Authorization: Bearer x\ny", "a bare LF in a value"},
		{"No colon here", "no colon"},
		{": empty name", "an empty name"},
		{"Bad Name: x", "a space in the name"},
		{"X-Ctl: \x01", "a control character in the value"},
	};
	int accepted = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *one[] = {"Accept-Language: en", bad[i][0], NULL};
		sent = true;
		rc = httpc_do_ex(lurl, "GET", "/v1/nodes", NULL, one, 2000, &r, &sent, err, sizeof(err));
		ok(rc == HTTPC_BAD_REQUEST && !sent && r.body == NULL, "a header line with %s: HTTPC_BAD_REQUEST, sent false (%s)",
		   bad[i][1], err);
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		accepted += poll(&p, 1, 0) > 0;
	}
	is_int(accepted, 0, "... and not one of them opened a connection");
	close(lfd);

	/* Refused: sent stays false (safe to send elsewhere). */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	al = sizeof(a);
	a.sin_port = 0;
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &al);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	sent = true;
	rc = httpc_do_ex(url, "POST", "/v1/nodes", "{}", hdrs, 5000, &r, &sent, err, sizeof(err));
	close(fd);
	ok(rc == HTTPC_REFUSED && !sent, "connection refused: sent false (%s)", err);

	/* Sent but never answered: sent true (the server may have acted on it). */
	server_start(&s, M_SILENT);
	sent = false;
	rc = httpc_do_ex(s.url, "POST", "/v1/nodes", "{}", hdrs, 300, &r, &sent, err, sizeof(err));
	server_end(&s);
	ok(rc == HTTPC_TIMEOUT && sent, "no answer after sending: HTTPC_TIMEOUT with sent true (%s)", err);

	/* Bad input: nothing is sent. */
	rc = httpc_do("127.0.0.1:80", "GET", "/", NULL, 1000, &r, err, sizeof(err));
	is_int(rc, HTTPC_BAD_REQUEST, "a base URL without http://: HTTPC_BAD_REQUEST (%s)", err);
	rc = httpc_do("http://127.0.0.1:80/x", "GET", "/", NULL, 1000, &r, err, sizeof(err));
	is_int(rc, HTTPC_BAD_REQUEST, "a base URL with a path: HTTPC_BAD_REQUEST (%s)", err);
	rc = httpc_do("http://127.0.0.1:1", "GET", "/a b", NULL, 1000, &r, err, sizeof(err));
	is_int(rc, HTTPC_BAD_REQUEST, "a path with a space: HTTPC_BAD_REQUEST (%s)", err);
	rc = httpc_do("http://127.0.0.1:1", "GE\nT", "/", NULL, 1000, &r, err, sizeof(err));
	is_int(rc, HTTPC_BAD_REQUEST, "a method with a newline: HTTPC_BAD_REQUEST");
	return tap_done();
}
