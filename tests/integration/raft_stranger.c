/* raft_stranger — speaks canonical raft 0.15's TCP protocol to a raft port as a
 * server of our choosing, for tests/integration/raftport.sh.
 *
 *   raft_stranger HOST PORT ID [--bind IP] [--term T] [--seconds S]
 *
 * For S seconds (default 3), over and over: connect (from IP when --bind is
 * given), send raft's handshake (protocol 1, server id ID, the address
 * "IP:1"), then a RequestVote for term T (default 5000) with the
 * disrupt-leader flag, which a leader must not ignore, and a log claimed to be
 * far ahead. Then wait up to 2 s for the server to close the connection.
 *
 * Wire format (src/uv_tcp_connect.c, uv_encoding.c): little-endian uint64s.
 * Handshake: protocol, id, length of the address buffer (the address, NUL,
 * padded to 8 bytes), the buffer. Message: type (3 = RequestVote), header
 * length (40), then term, candidate id, last log index, last log term, flags
 * (bit 0: disrupt leader; bit 1: pre-vote).
 *
 * Prints "sent=N closed=M": connections that carried the whole message, and how
 * many of those the server closed before we did. Exits 0 when N > 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static size_t put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return 8;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int send_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* 1 when the server closes the connection (EOF or reset) within ms. */
static int closed_by_server(int fd, int ms)
{
	double end = now_s() + ms / 1000.0;
	for (;;) {
		int left = (int)((end - now_s()) * 1000);
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		char buf[256];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return 1; /* raft never answers on this stream: anything else is a close */
	}
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s HOST PORT ID [--bind IP] [--term T] [--seconds S]\n", argv[0]);
		return 2;
	}
	const char *host = argv[1];
	int port = atoi(argv[2]);
	uint64_t id = strtoull(argv[3], NULL, 10);
	const char *bind_ip = NULL;
	uint64_t term = 5000;
	double seconds = 3;
	for (int i = 4; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--bind") == 0)
			bind_ip = argv[i + 1];
		else if (strcmp(argv[i], "--term") == 0)
			term = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(argv[i + 1]);
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &to.sin_addr) != 1) {
		fprintf(stderr, "bad host %s\n", host);
		return 2;
	}

	char address[64];
	snprintf(address, sizeof(address), "%s:1", bind_ip ? bind_ip : "127.0.0.1");
	size_t alen = (strlen(address) + 1 + 7) / 8 * 8;
	unsigned char msg[256];
	memset(msg, 0, sizeof(msg));
	size_t n = 0;
	n += put64(msg + n, 1); /* handshake protocol */
	n += put64(msg + n, id);
	n += put64(msg + n, alen);
	memcpy(msg + n, address, strlen(address));
	n += alen;
	n += put64(msg + n, 3);  /* RAFT_IO_REQUEST_VOTE */
	n += put64(msg + n, 40); /* header length */
	n += put64(msg + n, term);
	n += put64(msg + n, id);         /* candidate id */
	n += put64(msg + n, 1ull << 40); /* last log index: far ahead */
	n += put64(msg + n, term);       /* last log term */
	n += put64(msg + n, 1);          /* flags: disrupt leader */

	unsigned sent = 0, closed = 0, failed = 0;
	double end = now_s() + seconds;
	while (now_s() < end) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) {
			perror("socket");
			return 1;
		}
		if (bind_ip) {
			struct sockaddr_in from = {.sin_family = AF_INET};
			if (inet_pton(AF_INET, bind_ip, &from.sin_addr) != 1 ||
			    bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0) {
				perror("bind");
				return 1;
			}
		}
		if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0 || send_all(fd, msg, n) != 0) {
			failed++;
		} else {
			sent++;
			closed += (unsigned)closed_by_server(fd, 2000);
		}
		close(fd);
		usleep(50 * 1000);
	}
	printf("sent=%u closed=%u failed=%u\n", sent, closed, failed);
	return sent > 0 ? 0 : 1;
}
