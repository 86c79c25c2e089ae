/* cutproxy — a TCP proxy for group_resend.sh that loses one answer on purpose.
 *
 *   cutproxy LISTEN_PORT TARGET_PORT MARKER
 *
 * Listens on 127.0.0.1:LISTEN_PORT and relays every connection to
 * 127.0.0.1:TARGET_PORT, both ways, until either side closes. The first time
 * bytes sent to the target contain MARKER, they are relayed, and then the
 * client's side of that connection is closed at once: the server got the
 * request and acts on it, the client gets no answer (as when a server dies
 * between doing the work and answering, but with the server still up). Every
 * connection and the cut are logged on stderr; "ready" is printed on stdout
 * once it listens. Runs until killed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAIRS 64
#define SEEN 65536 /* bytes of each request stream kept to look for the marker */

struct pair {
	int c, u;  /* client and upstream sockets; -1 closed */
	char *seen;
	size_t seen_len;
	int drain; /* the client is gone: what the target sends is read and dropped */
};

static struct pair pairs[PAIRS];
static const char *marker;
static int cut_done;

static void pair_close(struct pair *p)
{
	if (p->c >= 0)
		close(p->c);
	if (p->u >= 0)
		close(p->u);
	free(p->seen);
	memset(p, 0, sizeof(*p));
	p->c = p->u = -1;
}

static int write_all(int fd, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int connect_to(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Bytes from the client: to the target; the cut when the marker shows. */
static void from_client(struct pair *p, const char *b, size_t n)
{
	if (write_all(p->u, b, n) != 0) {
		pair_close(p);
		return;
	}
	if (cut_done)
		return;
	size_t keep = n < SEEN - p->seen_len ? n : SEEN - p->seen_len;
	memcpy(p->seen + p->seen_len, b, keep);
	p->seen_len += keep;
	p->seen[p->seen_len] = '\0';
	if (strstr(p->seen, marker) != NULL) {
		cut_done = 1;
		fprintf(stderr, "cutproxy: the request with %s went through; the client's connection is closed\n", marker);
		close(p->c);
		p->c = -1;
		p->drain = 1;
	}
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: cutproxy LISTEN_PORT TARGET_PORT MARKER\n");
		return 2;
	}
	int lport = atoi(argv[1]), tport = atoi(argv[2]);
	marker = argv[3];
	for (int i = 0; i < PAIRS; i++)
		pairs[i].c = pairs[i].u = -1;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 16) != 0) {
		perror("cutproxy: listen");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		struct pollfd fds[1 + 2 * PAIRS];
		int who[1 + 2 * PAIRS], nf = 0;
		fds[nf] = (struct pollfd){.fd = l, .events = POLLIN};
		who[nf++] = -1;
		for (int i = 0; i < PAIRS; i++) {
			if (pairs[i].u < 0)
				continue;
			if (pairs[i].c >= 0) {
				fds[nf] = (struct pollfd){.fd = pairs[i].c, .events = POLLIN};
				who[nf++] = 2 * i;
			}
			fds[nf] = (struct pollfd){.fd = pairs[i].u, .events = POLLIN};
			who[nf++] = 2 * i + 1;
		}
		if (poll(fds, (nfds_t)nf, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("cutproxy: poll");
			return 1;
		}
		for (int k = 0; k < nf; k++) {
			if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (who[k] < 0) {
				int c = accept(l, NULL, NULL);
				if (c < 0)
					continue;
				int slot = -1;
				for (int i = 0; i < PAIRS && slot < 0; i++)
					if (pairs[i].u < 0)
						slot = i;
				int u = slot < 0 ? -1 : connect_to(tport);
				if (u < 0) {
					fprintf(stderr, "cutproxy: cannot relay a connection\n");
					close(c);
					continue;
				}
				pairs[slot].c = c;
				pairs[slot].u = u;
				pairs[slot].seen = malloc(SEEN + 1);
				pairs[slot].seen_len = 0;
				pairs[slot].drain = 0;
				fprintf(stderr, "cutproxy: connection %d accepted\n", slot);
				continue;
			}
			struct pair *p = &pairs[who[k] / 2];
			int from_c = who[k] % 2 == 0;
			int fd = from_c ? p->c : p->u;
			if (fd < 0)
				continue; /* closed earlier in this round */
			char b[16384];
			ssize_t n = read(fd, b, sizeof(b));
			if (n <= 0) {
				pair_close(p);
				continue;
			}
			if (from_c)
				from_client(p, b, (size_t)n);
			else if (!p->drain && write_all(p->c, b, (size_t)n) != 0)
				pair_close(p);
		}
	}
}
