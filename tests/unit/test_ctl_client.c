/* test_ctl_client — latticectl's requests over several replicas (ctl_client.c)
 * against little scripted servers of this file on 127.0.0.1: each answers its
 * connections with the answers it was given, in order, and keeps the requests
 * as they came. What goes on the wire (Authorization, Idempotency-Key,
 * User-Agent), which 503s move a request to the next replica and which stop it,
 * following the leader a replica names, and where the next request starts.
 * Messages latticectl prints on the way go to stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl_client.h"
#include "ctl_config.h"
#include "tap.h"

#define MAXC 8

struct fake {
	int lfd;
	char url[64];
	const char *answers[MAXC]; /* one per connection, in order */
	int nanswers;
	char req[MAXC][8192];      /* the requests as they came */
	int served;
	pthread_t th;
};

static void read_request(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	while (len < cap - 1) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		const char *end = strstr(buf, "\r\n\r\n");
		const char *cl = strcasestr(buf, "Content-Length: ");
		if (end && len >= (size_t)(end + 4 - buf) + (cl ? (size_t)atoi(cl + 16) : 0))
			break;
	}
	buf[len] = '\0';
}

static void *serve(void *arg)
{
	struct fake *f = arg;
	while (f->served < f->nanswers) {
		struct pollfd p = {.fd = f->lfd, .events = POLLIN};
		if (poll(&p, 1, 3000) <= 0)
			break; /* not asked as often as scripted: the test says so */
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			break;
		read_request(fd, f->req[f->served], sizeof(f->req[0]));
		const char *a = f->answers[f->served++];
		send(fd, a, strlen(a), MSG_NOSIGNAL);
		close(fd);
	}
	return NULL;
}

/* A server answering with each of answers (NULL-terminated), one connection each. */
static void fake_start(struct fake *f, const char *const *answers)
{
	memset(f, 0, sizeof(*f));
	for (; answers && answers[f->nanswers]; f->nanswers++)
		f->answers[f->nanswers] = answers[f->nanswers];
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(f->lfd, 8) != 0 ||
	    getsockname(f->lfd, (struct sockaddr *)&a, &al) != 0) {
		perror("fake server");
		exit(2);
	}
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	pthread_create(&f->th, NULL, serve, f);
}

static void fake_end(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
}

/* A URL nothing listens on (bound, not listening: refused). */
static int dead_fd = -1;
static void dead_url(char *out, size_t n)
{
	dead_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	bind(dead_fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(dead_fd, (struct sockaddr *)&a, &al);
	snprintf(out, n, "http://127.0.0.1:%d", ntohs(a.sin_port));
}

/* An answer with its Content-Length filled in (static storage, one per call site). */
static const char *answer(char *buf, size_t n, const char *status, const char *body)
{
	snprintf(buf, n, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nX-Lattice-Index: 7\r\nContent-Length: %zu\r\n\r\n%s",
		 status, strlen(body), body);
	return buf;
}

static struct ctl_config cfg;
static struct ctl_client cl;

static void client(const char *servers, const char *token)
{
	char err[300];
	memset(&cfg, 0, sizeof(cfg));
	if (ctl_config_add_servers(&cfg, servers, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		exit(2);
	}
	cfg.token = token ? strdup(token) : NULL;
	cfg.timeout_ms = 3000;
	ctl_client_init(&cl, &cfg);
}

static void client_end(void)
{
	ctl_client_free(&cl);
	ctl_config_free(&cfg);
}

/* The value of header name in a raw request ("" when absent). */
static const char *header(const char *req, const char *name)
{
	static char out[256];
	char pat[64];
	snprintf(pat, sizeof(pat), "\r\n%s: ", name);
	const char *p = strstr(req, pat);
	out[0] = '\0';
	if (p) {
		p += strlen(pat);
		size_t n = strcspn(p, "\r");
		snprintf(out, sizeof(out), "%.*s", (int)n, p);
	}
	return out;
}

int main(void)
{
	tap_plan(26);
	struct fake a, b;
	struct ctl_resp r;
	char a1[512], a2[512], b1[512], lists[256];
	int rc;

	/* 503 not_leader on a POST: the replica's /v1/cluster names the leader, which takes it. */
	fake_start(&b, (const char *[]){answer(b1, sizeof(b1), "201 Created", "{\"id\":\"n1\"}"), NULL});
	char cluster[256];
	snprintf(cluster, sizeof(cluster), "{\"leader\":{\"id\":2,\"address\":\"x\",\"api_url\":\"%s/\"}}", b.url);
	fake_start(&a, (const char *[]){answer(a1, sizeof(a1), "503 Service Unavailable",
					       "{\"error\":{\"code\":\"not_leader\",\"message\":\"not me\"}}"),
					answer(a2, sizeof(a2), "200 OK", cluster), NULL});
	client(a.url, "tok123");
	rc = ctl_request(&cl, "POST", "/v1/nodes", "{\"id\":\"n1\"}", 0, &r);
	fake_end(&a);
	fake_end(&b);
	ok(rc == CTL_EXIT_OK && r.status == 201 && r.server && strcmp(r.server, b.url) == 0,
	   "503 not_leader: the leader the replica names (GET /v1/cluster) is tried and answers 201");
	is_int(r.index, 7, "... X-Lattice-Index read");
	ok(strncmp(a.req[0], "POST /v1/nodes HTTP/1.1\r\n", 25) == 0 && strncmp(a.req[1], "GET /v1/cluster HTTP/1.1\r\n", 26) == 0,
	   "... the first replica got the POST, then GET /v1/cluster");
	is_str(header(a.req[0], "Authorization"), "Bearer tok123", "the token goes as Authorization: Bearer");
	is_str(header(a.req[1], "Authorization"), "Bearer tok123", "... on the leader question too");
	ok(strncmp(header(a.req[0], "User-Agent"), "latticectl/", 11) == 0, "User-Agent: latticectl/VERSION (%s)",
	   header(a.req[0], "User-Agent"));
	char key[256];
	snprintf(key, sizeof(key), "%s", header(a.req[0], "Idempotency-Key"));
	ok(strlen(key) == 36 && strncmp(key, "ctl-", 4) == 0 && strspn(key + 4, "0123456789abcdef") == 32,
	   "a POST carries a random Idempotency-Key (%s)", key);
	is_str(header(b.req[0], "Idempotency-Key"), key, "... the same one to the leader: applying it twice is impossible");
	is_str(header(a.req[1], "Idempotency-Key"), "", "a GET carries none");
	ok(strstr(b.req[0], "\r\n\r\n{\"id\":\"n1\"}") != NULL, "... the body goes to the leader as it was");
	ctl_resp_free(&r);
	client_end();

	/* A read: 503 at the first, the second answers; the next request starts there
	 * (the first has a second answer ready: asked again, it would count it). */
	answer(a1, sizeof(a1), "503 Service Unavailable",
	       "{\"error\":{\"code\":\"projection_lagging\",\"message\":\"later\"}}");
	fake_start(&a, (const char *[]){a1, a1, NULL});
	snprintf(lists, sizeof(lists), "{\"items\":[],\"next\":null}");
	fake_start(&b, (const char *[]){answer(b1, sizeof(b1), "200 OK", lists), answer(a2, sizeof(a2), "200 OK", lists),
					NULL});
	char both[200];
	snprintf(both, sizeof(both), "%s,%s", a.url, b.url);
	client(both, NULL);
	rc = ctl_request(&cl, "GET", "/v1/nodes?limit=1", NULL, 0, &r);
	ok(rc == CTL_EXIT_OK && r.status == 200 && strcmp(r.server, b.url) == 0, "a read answered 503 goes to the next replica");
	ok(json_is_array(json_object_get(r.json, "items")), "... the answer's JSON is parsed");
	is_str(header(b.req[0], "Authorization"), "", "no token: no Authorization header");
	ctl_resp_free(&r);
	rc = ctl_request(&cl, "GET", "/v1/nodes?limit=2", NULL, 0, &r);
	fake_end(&a);
	fake_end(&b);
	ok(rc == CTL_EXIT_OK && strcmp(r.server, b.url) == 0 && a.served == 1 && b.served == 2,
	   "the next request starts at the replica that answered last (the first was not asked again)");
	ctl_resp_free(&r);
	client_end();

	/* A PATCH answered 503 unavailable: may be applied, so not sent elsewhere. */
	fake_start(&a, (const char *[]){answer(a1, sizeof(a1), "503 Service Unavailable",
					       "{\"error\":{\"code\":\"unavailable\",\"message\":\"lost it\"}}"),
					NULL});
	fake_start(&b, NULL);
	snprintf(both, sizeof(both), "%s,%s", a.url, b.url);
	client(both, NULL);
	rc = ctl_request(&cl, "PATCH", "/v1/actors/x", "{\"replicas\":2}", 0, &r);
	fake_end(&a);
	fake_end(&b);
	ok(rc == CTL_EXIT_OK && r.status == 503 && b.served == 0,
	   "a PATCH answered 503 unavailable is not sent to another replica");
	is_str(r.code, "unavailable", "... its error code read");
	is_int(ctl_exit_for(r.status, r.code, true), CTL_EXIT_UNKNOWN, "... and it means exit 6");
	is_str(header(a.req[0], "Idempotency-Key"), "", "a PATCH carries no Idempotency-Key");
	ctl_resp_free(&r);
	client_end();

	/* A PATCH answered 503 no_leader (refused: nothing done) goes on. */
	fake_start(&a, (const char *[]){answer(a1, sizeof(a1), "503 Service Unavailable",
					       "{\"error\":{\"code\":\"no_leader\",\"message\":\"election\"}}"),
					answer(a2, sizeof(a2), "200 OK", "{\"leader\":null}"), NULL});
	fake_start(&b, (const char *[]){answer(b1, sizeof(b1), "200 OK", "{\"id\":\"x\"}"), NULL});
	snprintf(both, sizeof(both), "%s,%s", a.url, b.url);
	client(both, NULL);
	rc = ctl_request(&cl, "PATCH", "/v1/actors/x", "{\"replicas\":2}", 0, &r);
	fake_end(&a);
	fake_end(&b);
	ok(rc == CTL_EXIT_OK && r.status == 200 && strcmp(r.server, b.url) == 0,
	   "a PATCH answered 503 no_leader goes to the next replica (no leader named: the list's order)");
	ctl_resp_free(&r);
	client_end();

	/* A POST answered 503 commit_timeout, then no replica: exit 6, not 5. */
	char dead[64];
	dead_url(dead, sizeof(dead));
	fake_start(&a, (const char *[]){answer(a1, sizeof(a1), "503 Service Unavailable",
					       "{\"error\":{\"code\":\"commit_timeout\",\"message\":\"slow\"}}"),
					NULL});
	snprintf(both, sizeof(both), "%s,%s", a.url, dead);
	client(both, NULL);
	cl.idem_key = "my-key-1";
	rc = ctl_request(&cl, "POST", "/v1/actors", "{}", 0, &r);
	fake_end(&a);
	is_int(rc, CTL_EXIT_UNKNOWN, "a POST that may have been applied, then no replica: exit 6 (outcome unknown)");
	is_str(header(a.req[0], "Idempotency-Key"), "my-key-1", "--idempotency-key is the key sent");
	client_end();

	/* Nothing reachable: exit 5; a write refused everywhere: exit 5 too. */
	snprintf(both, sizeof(both), "%s", dead);
	client(both, NULL);
	rc = ctl_request(&cl, "POST", "/v1/nodes", "{}", 0, &r);
	is_int(rc, CTL_EXIT_UNAVAILABLE, "no replica reachable: exit 5 (nothing was sent)");
	client_end();
	fake_start(&a, (const char *[]){answer(a1, sizeof(a1), "503 Service Unavailable",
					       "{\"error\":{\"code\":\"disk_full\",\"message\":\"full\"}}"),
					NULL});
	client(a.url, NULL);
	rc = ctl_request(&cl, "DELETE", "/v1/nodes/x", NULL, 0, &r);
	fake_end(&a);
	is_int(rc, CTL_EXIT_UNAVAILABLE, "a DELETE every replica refused (503 disk_full): exit 5");
	client_end();

	/* A token with a newline never reaches the wire (httpc refuses the header). */
	fake_start(&a, NULL);
	client(a.url, "a\r\nX-Evil: 1");
	rc = ctl_request(&cl, "GET", "/v1/nodes", NULL, 0, &r);
	fake_end(&a);
	ok(rc == CTL_EXIT_USAGE && a.served == 0, "a token with CRLF is refused before anything is sent");
	client_end();

	/* An answer that is not JSON: kept as text, no code. */
	fake_start(&a, (const char *[]){"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\n\r\noops!", NULL});
	client(a.url, NULL);
	rc = ctl_request(&cl, "GET", "/v1/nodes", NULL, 0, &r);
	fake_end(&a);
	ok(rc == CTL_EXIT_OK && r.status == 502 && !r.json && r.code[0] == '\0' && strcmp(r.body, "oops!") == 0,
	   "a 502 that is not JSON: the body as text, no error code");
	is_int(ctl_exit_for(r.status, r.code, false), CTL_EXIT_FAILED, "... exit 1");
	ctl_resp_free(&r);
	client_end();
	close(dead_fd);
	return tap_done();
}
