/* slowread — a client that asks for an answer and then does not read it, for
 * events_sse.sh (a slow event stream consumer).
 *
 *   slowread PORT PATH STALL_MS MAX_MS [HEADER...]
 *
 * Connects to 127.0.0.1:PORT with a receive buffer of 4 KiB (set before
 * connecting, so the TCP window stays small and the server's side fills up
 * after a few KiB instead of megabytes), sends "GET PATH HTTP/1.0" with the
 * headers given, reads nothing for STALL_MS, then copies everything it gets to
 * stdout until the server closes or MAX_MS have passed since the start. HTTP/1.0
 * keeps the answer free of chunked framing. Exit 0 when the server closed the
 * connection, 3 when MAX_MS ran out first, 2 on a usage or connect error.
 *
 * Written in C because neither curl nor bash can shrink a socket's buffer. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: slowread PORT PATH STALL_MS MAX_MS [HEADER...]\n");
		return 2;
	}
	long long start = now_ms(), stall = atoll(argv[3]), max = atoll(argv[4]);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int rcv = 4096;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) != 0) {
		perror("slowread: socket");
		return 2;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("slowread: connect");
		return 2;
	}
	char req[4096];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n", argv[2]);
	for (int i = 5; i < argc && n > 0 && (size_t)n < sizeof(req); i++)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "%s\r\n", argv[i]);
	if (n <= 0 || (size_t)n + 2 >= sizeof(req)) {
		fprintf(stderr, "slowread: request too long\n");
		return 2;
	}
	n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		perror("slowread: send");
		return 2;
	}
	while (now_ms() - start < stall)
		usleep(10000);
	char buf[4096];
	for (;;) {
		long long left = start + max - now_ms();
		if (left <= 0)
			return 3;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r <= 0)
			break;
		fwrite(buf, 1, (size_t)r, stdout);
	}
	fflush(stdout);
	close(fd);
	return 0;
}
