/* bench_api — HTTP/1.1 keep-alive load generator for latticed's write path.
 *
 *   bench_api nodes  HOST:PORT COUNT CONC      register COUNT nodes
 *   bench_api actors HOST:PORT COUNT CONC      create COUNT actors
 *   bench_api rate   HOST:PORT SECONDS CONC    create actors for SECONDS
 *
 * Each of CONC threads keeps one connection and sends one request at a time;
 * only 201 answers count as acknowledged. BENCH_SLOW_MS=N prints each request
 * that took N ms or more to stderr, with its start time (finding what a tail
 * is made of). BENCH_REGIONS=N (default 8): actors prefer region-0 .. region-(N-1).
 * Prints one line:
 *   RESULT mode=.. conc=.. acked=.. errors=.. seconds=.. per_sec=.. p50_ms=.. p99_ms=.. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { M_NODES, M_ACTORS, M_RATE };

static enum mode mode;
static struct sockaddr_in addr;
static long total;         /* COUNT, or 0 for M_RATE */
static double seconds_max; /* M_RATE */
static atomic_long next_seq, acked, errors;
static double t_start;
static double slow_ms; /* BENCH_SLOW_MS: requests at least this slow are printed to stderr */
static long regions = 8;  /* BENCH_REGIONS: actors' preferred regions */

struct worker {
	pthread_t th;
	int id;
	double *lat; /* seconds per acked request */
	size_t nlat, caplat;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_to(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Case-insensitive search for "\r\n<name>" in the head; returns its start. */
static char *find_header(char *head, const char *name)
{
	size_t n = strlen(name);
	for (char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
		size_t i = 0;
		while (i < n && p[2 + i] && (p[2 + i] | 0x20) == (name[i] | 0x20))
			i++;
		if (i == n)
			return p;
	}
	return NULL;
}

/* Sends one request and reads the answer; returns the status or -1. */
static int roundtrip(int fd, const char *req, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, req + off, len - off);
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	char buf[16384];
	size_t have = 0;
	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (end == NULL) {
			if (have >= sizeof(buf) - 1)
				return -1;
			continue;
		}
		int status = atoi(buf + 9);
		char *cl = find_header(buf, "content-length:");
		size_t body = cl ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
		size_t need = (size_t)(end + 4 - buf) + body;
		while (have < need) {
			/* Discard the rest of a long body. */
			size_t want = need - have < sizeof(buf) ? need - have : sizeof(buf);
			r = read(fd, buf, want);
			if (r <= 0)
				return -1;
			have += (size_t)r;
		}
		return status;
	}
}

static void *work(void *arg)
{
	struct worker *w = arg;
	int fd = connect_to();
	char body[512], req[1024];
	for (;;) {
		long seq = atomic_fetch_add(&next_seq, 1);
		if (mode != M_RATE && seq >= total)
			break;
		if (mode == M_RATE && now() - t_start >= seconds_max)
			break;
		const char *path;
		if (mode == M_NODES) {
			path = "/v1/nodes";
			snprintf(body, sizeof(body),
				 "{\"id\":\"bench-node-%06ld\",\"region\":\"region-%ld\",\"labels\":{\"tier\":\"edge\"},"
				 "\"cpu_capacity\":64000,\"memory_mb\":262144,\"cpu_used\":%ld,\"memory_used_mb\":%ld}",
				 seq, seq % 8, (seq * 37) % 4000, (seq * 53) % 8192);
		} else {
			path = "/v1/actors";
			snprintf(body, sizeof(body),
				 "{\"module\":\"registry.local/edge-processor:0.1.0\",\"cpu_required\":%ld,"
				 "\"memory_required_mb\":%ld,\"preferred_region\":\"region-%ld\",\"priority\":5}",
				 10 + seq % 50, 1 + seq % 16, seq % regions);
		}
		int n = snprintf(req, sizeof(req),
				 "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
				 "Content-Length: %zu\r\n\r\n%s",
				 path, strlen(body), body);
		double t0 = now();
		int st = fd >= 0 ? roundtrip(fd, req, (size_t)n) : -1;
		double dt = now() - t0;
		if (slow_ms > 0 && dt * 1000 >= slow_ms)
			fprintf(stderr, "slow at %.3f s: %.1f ms (HTTP %d)\n", t0 - t_start, dt * 1000, st);
		if (st == 201) {
			atomic_fetch_add(&acked, 1);
			if (w->nlat == w->caplat) {
				w->caplat = w->caplat ? w->caplat * 2 : 4096;
				w->lat = realloc(w->lat, w->caplat * sizeof(double));
			}
			w->lat[w->nlat++] = dt;
		} else {
			atomic_fetch_add(&errors, 1);
			if (st < 0) {
				if (fd >= 0)
					close(fd);
				fd = connect_to();
				if (fd < 0)
					usleep(10000);
			}
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: bench_api nodes|actors|rate HOST:PORT COUNT|SECONDS CONC\n");
		return 2;
	}
	mode = strcmp(argv[1], "nodes") == 0 ? M_NODES : strcmp(argv[1], "actors") == 0 ? M_ACTORS : M_RATE;
	char host[64];
	const char *colon = strrchr(argv[2], ':');
	if (colon == NULL || (size_t)(colon - argv[2]) >= sizeof(host))
		return 2;
	memcpy(host, argv[2], (size_t)(colon - argv[2]));
	host[colon - argv[2]] = '\0';
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		return 2;
	if (mode == M_RATE)
		seconds_max = atof(argv[3]);
	else
		total = atol(argv[3]);
	int conc = atoi(argv[4]);
	if (getenv("BENCH_SLOW_MS"))
		slow_ms = atof(getenv("BENCH_SLOW_MS"));
	if (getenv("BENCH_REGIONS") && atol(getenv("BENCH_REGIONS")) > 0)
		regions = atol(getenv("BENCH_REGIONS"));
	if (conc < 1 || conc > 1024)
		return 2;
	struct worker *ws = calloc((size_t)conc, sizeof(*ws));
	t_start = now();
	for (int i = 0; i < conc; i++) {
		ws[i].id = i;
		pthread_create(&ws[i].th, NULL, work, &ws[i]);
	}
	size_t nlat = 0;
	for (int i = 0; i < conc; i++) {
		pthread_join(ws[i].th, NULL);
		nlat += ws[i].nlat;
	}
	double el = now() - t_start;
	double *all = malloc((nlat ? nlat : 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < conc; i++) {
		memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof(double));
		k += ws[i].nlat;
		free(ws[i].lat);
	}
	qsort(all, nlat, sizeof(double), cmp_d);
	double p50 = nlat ? all[nlat / 2] : 0, p99 = nlat ? all[(size_t)((double)(nlat - 1) * 0.99)] : 0;
	printf("RESULT mode=%s conc=%d acked=%ld errors=%ld seconds=%.2f per_sec=%.0f p50_ms=%.2f p99_ms=%.2f\n",
	       argv[1], conc, atomic_load(&acked), atomic_load(&errors), el, (double)atomic_load(&acked) / el,
	       p50 * 1000, p99 * 1000);
	free(all);
	free(ws);
	return atomic_load(&errors) > 0 && atomic_load(&acked) == 0;
}
