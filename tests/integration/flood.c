/* flood — a connection flood for tests/integration/flood.sh.
 *
 * Opens N TCP connections from one or more local source addresses to a server
 * and holds them: "idle" sends nothing, "slow-header" sends a GET request one
 * byte per interval, "slow-body" sends a POST's headers at once and its body
 * one byte per interval, "keepalive" sends a whole GET /healthz at once and
 * then waits on the open connection. Once the number of connections the server left open
 * has not changed for --settle-ms, it probes the server from --probe-from (a
 * GET of --probe over a fresh connection, HTTP/1.0) while the flood goes on.
 * It stops when every flood connection is closed, or --hold-ms after the start
 * (never before the probe is done), and prints one line of key=value results:
 *
 *   opened          connections established
 *   connect_failed  connections that did not establish within 3 s
 *   open_at_probe   flood connections open when the probe started
 *   probe_status    the probe's HTTP status (0: no answer in --probe-wait-ms)
 *   probe_ms        how long the probe took
 *   open            flood connections still open at the end
 *   complete        flood connections that sent their whole request
 *   answered        flood connections that got any bytes back
 *   closed_early    closed by the server less than --late-ms after connecting
 *   closed_late     closed by the server --late-ms or more after connecting
 *   late_min_ms, late_max_ms   the range of the latter
 *
 * Written in C so that the test needs nothing beyond the build (bash cannot
 * choose a source address, and curl cannot hold a thousand sockets). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_IDLE, MODE_SLOW_HEADER, MODE_SLOW_BODY, MODE_KEEPALIVE };

struct conn {
	int fd;          /* -1 once closed */
	int64_t opened;  /* ms */
	size_t sent;     /* bytes of the request sent */
	bool answered;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *msg)
{
	fprintf(stderr, "flood: %s\n", msg);
	exit(2);
}

static void usage(void)
{
	fprintf(stderr, "usage: flood --from IP[,IP...] --to IP:PORT --count N\n"
			"             [--mode idle|slow-header|slow-body|keepalive]\n"
			"             [--interval-ms MS] [--settle-ms MS] [--probe PATH] [--probe-from IP]\n"
			"             [--probe-wait-ms MS] [--hold-ms MS] [--late-ms MS]\n");
	exit(2);
}

static int parse_addr(const char *s, struct sockaddr_in *sa, bool want_port)
{
	char host[64];
	int port = 0;
	const char *colon = want_port ? strrchr(s, ':') : NULL;
	size_t hl = colon ? (size_t)(colon - s) : strlen(s);
	if (hl >= sizeof(host) || (want_port && colon == NULL))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (colon)
		port = atoi(colon + 1);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* A non-blocking TCP connection from src to dst, established within 3 s, or -1. */
static int dial(const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) != 0 ||
	    (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) != 0 && errno != EINPROGRESS)) {
		close(fd);
		return -1;
	}
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t el = sizeof(err);
	if (poll(&p, 1, 3000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void conn_close(struct conn *c, int64_t now, int64_t late_ms, long *early, long *late, int64_t *lmin,
		       int64_t *lmax)
{
	int64_t took = now - c->opened;
	close(c->fd);
	c->fd = -1;
	if (took < late_ms) {
		(*early)++;
	} else {
		(*late)++;
		if (*lmin < 0 || took < *lmin)
			*lmin = took;
		if (took > *lmax)
			*lmax = took;
	}
}

int main(int argc, char **argv)
{
	const char *from = NULL, *to = NULL, *probe = NULL, *probe_from = "127.0.0.1";
	long count = 0, interval_ms = 1000, settle_ms = 1000, probe_wait_ms = 5000, hold_ms = 0, late_ms = 1000;
	enum mode mode = MODE_IDLE;
	static const struct option lo[] = {
		{"from", required_argument, NULL, 'f'},	     {"to", required_argument, NULL, 't'},
		{"count", required_argument, NULL, 'n'},     {"mode", required_argument, NULL, 'm'},
		{"interval-ms", required_argument, NULL, 'i'}, {"settle-ms", required_argument, NULL, 's'},
		{"probe", required_argument, NULL, 'p'},     {"probe-from", required_argument, NULL, 'P'},
		{"probe-wait-ms", required_argument, NULL, 'w'}, {"hold-ms", required_argument, NULL, 'H'},
		{"late-ms", required_argument, NULL, 'l'},   {NULL, 0, NULL, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'n': count = atol(optarg); break;
		case 'm':
			if (strcmp(optarg, "idle") == 0)
				mode = MODE_IDLE;
			else if (strcmp(optarg, "slow-header") == 0)
				mode = MODE_SLOW_HEADER;
			else if (strcmp(optarg, "slow-body") == 0)
				mode = MODE_SLOW_BODY;
			else if (strcmp(optarg, "keepalive") == 0)
				mode = MODE_KEEPALIVE;
			else
				usage();
			break;
		case 'i': interval_ms = atol(optarg); break;
		case 's': settle_ms = atol(optarg); break;
		case 'p': probe = optarg; break;
		case 'P': probe_from = optarg; break;
		case 'w': probe_wait_ms = atol(optarg); break;
		case 'H': hold_ms = atol(optarg); break;
		case 'l': late_ms = atol(optarg); break;
		default: usage();
		}
	}
	if (from == NULL || to == NULL || count <= 0 || interval_ms <= 0)
		usage();

	struct sockaddr_in dst, psrc, srcs[16];
	size_t nsrc = 0;
	if (parse_addr(to, &dst, true) != 0 || parse_addr(probe_from, &psrc, false) != 0)
		die("bad --to or --probe-from address");
	char list[256];
	snprintf(list, sizeof(list), "%s", from);
	for (char *save = NULL, *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		if (nsrc == sizeof(srcs) / sizeof(srcs[0]) || parse_addr(a, &srcs[nsrc++], false) != 0)
			die("bad --from address");
	}

	/* The request a slow client never finishes: padded to far more bytes
	 * than it sends during any test. */
	char req[2048], pad[1001];
	memset(pad, 'a', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	size_t head_len = 0; /* slow-body: the part sent at once */
	if (mode == MODE_SLOW_BODY) {
		char body[512];
		int bl = snprintf(body, sizeof(body), "{\"id\":\"slow-body\",\"region\":\"eu\"}%300s", "");
		head_len = (size_t)snprintf(req, sizeof(req),
					    "POST /v1/nodes HTTP/1.1\r\nHost: flood\r\n"
					    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
					    bl);
		snprintf(req + head_len, sizeof(req) - head_len, "%s", body);
	} else if (mode == MODE_KEEPALIVE) {
		head_len = (size_t)snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n");
	} else {
		snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: flood\r\nX-Pad: %s\r\n\r\n", pad);
	}
	size_t req_len = strlen(req);

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)count + 64) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)count + 64 ? (rlim_t)count + 64
												: rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	struct conn *cs = calloc((size_t)count, sizeof(*cs));
	struct pollfd *pfd = calloc((size_t)count + 1, sizeof(*pfd));
	size_t *idx = calloc((size_t)count + 1, sizeof(*idx));
	if (cs == NULL || pfd == NULL || idx == NULL)
		die("out of memory");
	long opened = 0, failed = 0, open = 0, complete = 0, early = 0, late = 0;
	int64_t lmin = -1, lmax = 0, start = now_ms();
	for (long i = 0; i < count; i++) {
		cs[i].fd = dial(&srcs[(size_t)i % nsrc], &dst);
		cs[i].opened = now_ms();
		if (cs[i].fd < 0) {
			failed++;
			continue;
		}
		opened++;
		open++;
		if (mode == MODE_SLOW_BODY || mode == MODE_KEEPALIVE) {
			/* The headers (keepalive: the whole request) at once. */
			ssize_t n = send(cs[i].fd, req, head_len, MSG_NOSIGNAL);
			cs[i].sent = n > 0 ? (size_t)n : 0;
			if (cs[i].sent == req_len)
				complete++;
		}
	}

	int64_t last_change = now_ms(), next_send = now_ms() + interval_ms;
	long open_at_probe = -1, probe_status = 0;
	int64_t probe_start = 0, probe_ms = -1;
	int pfd_probe = -1;
	char pbuf[64];
	size_t plen = 0;
	bool probe_done = probe == NULL;
	for (;;) {
		int64_t now = now_ms();
		if (probe_done && (open == 0 || now - start >= hold_ms))
			break;
		/* The probe, once the flood has settled. */
		if (!probe_done && pfd_probe < 0 && now - last_change >= settle_ms) {
			open_at_probe = open;
			probe_start = now;
			pfd_probe = dial(&psrc, &dst);
			char preq[512];
			snprintf(preq, sizeof(preq), "GET %s HTTP/1.0\r\n\r\n", probe);
			size_t pl = strlen(preq);
			if (pfd_probe < 0 || send(pfd_probe, preq, pl, MSG_NOSIGNAL) != (ssize_t)pl) {
				if (pfd_probe >= 0)
					close(pfd_probe);
				pfd_probe = -1;
				probe_done = true;
				probe_ms = now_ms() - probe_start;
			}
		}
		if (pfd_probe >= 0 && now - probe_start >= probe_wait_ms) {
			close(pfd_probe);
			pfd_probe = -1;
			probe_done = true;
			probe_ms = now - probe_start;
		}
		/* The trickle. */
		if (mode != MODE_IDLE && mode != MODE_KEEPALIVE && now >= next_send) {
			next_send = now + interval_ms;
			for (long i = 0; i < count; i++) {
				struct conn *c = &cs[i];
				if (c->fd < 0 || c->sent >= req_len)
					continue;
				ssize_t n = send(c->fd, req + c->sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
				if (n == 1) {
					if (++c->sent == req_len)
						complete++;
				} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
					conn_close(c, now, late_ms, &early, &late, &lmin, &lmax);
					open--;
					last_change = now;
				}
			}
		}
		size_t np = 0;
		for (long i = 0; i < count; i++) {
			if (cs[i].fd < 0)
				continue;
			pfd[np] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
			idx[np++] = (size_t)i;
		}
		if (pfd_probe >= 0)
			pfd[np++] = (struct pollfd){.fd = pfd_probe, .events = POLLIN};
		if (poll(pfd, np, 20) < 0 && errno != EINTR)
			die("poll failed");
		now = now_ms();
		for (size_t k = 0; k < np; k++) {
			if (pfd[k].revents == 0)
				continue;
			char buf[4096];
			if (pfd_probe >= 0 && pfd[k].fd == pfd_probe) {
				ssize_t n = recv(pfd_probe, buf, sizeof(buf), MSG_DONTWAIT);
				if (n > 0) {
					size_t room = sizeof(pbuf) - 1 - plen;
					size_t take = (size_t)n < room ? (size_t)n : room;
					memcpy(pbuf + plen, buf, take);
					plen += take;
					pbuf[plen] = '\0';
				}
				if (n == 0 || (n < 0 && errno != EAGAIN)) {
					int major, minor, st;
					if (sscanf(pbuf, "HTTP/%d.%d %d", &major, &minor, &st) == 3)
						probe_status = st;
					close(pfd_probe);
					pfd_probe = -1;
					probe_done = true;
					probe_ms = now - probe_start;
				}
				continue;
			}
			struct conn *c = &cs[idx[k]];
			ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n > 0) {
				c->answered = true;
			} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
				conn_close(c, now, late_ms, &early, &late, &lmin, &lmax);
				open--;
				last_change = now;
			}
		}
	}
	long answered = 0;
	for (long i = 0; i < count; i++) {
		answered += cs[i].answered;
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	}
	printf("opened=%ld connect_failed=%ld open_at_probe=%ld probe_status=%ld probe_ms=%lld open=%ld complete=%ld "
	       "answered=%ld closed_early=%ld closed_late=%ld late_min_ms=%lld late_max_ms=%lld\n",
	       opened, failed, open_at_probe, probe_status, (long long)probe_ms, open, complete, answered, early, late,
	       (long long)lmin, (long long)lmax);
	free(cs);
	free(pfd);
	free(idx);
	return 0;
}
