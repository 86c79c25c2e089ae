/* ctl_client — see ctl_client.h. */
#include "ctl_client.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl_table.h"
#include "ctl_util.h"
#include "httpc.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

void ctl_client_init(struct ctl_client *c, const struct ctl_config *cfg)
{
	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->timeout_ms = cfg->timeout_ms;
	for (size_t i = 0; i < cfg->nservers; i++)
		c->urls[c->nurls++] = ctl_xstrdup(cfg->servers[i]);
}

void ctl_client_free(struct ctl_client *c)
{
	for (size_t i = 0; i < c->nurls; i++)
		free(c->urls[i]);
	c->nurls = 0;
}

void ctl_resp_free(struct ctl_resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

__attribute__((format(printf, 2, 3))) static void vlog(const struct ctl_client *c, const char *fmt, ...)
{
	if (!c->verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void ctl_new_idem_key(char *out, size_t n)
{
	unsigned char r[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	bool got = fd >= 0 && read(fd, r, sizeof(r)) == (ssize_t)sizeof(r);
	if (fd >= 0)
		close(fd);
	if (!got) { /* no /dev/urandom: time and pid, still unique enough per call */
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		uint64_t x = (uint64_t)t.tv_sec * 1000000007ULL ^ (uint64_t)t.tv_nsec ^ ((uint64_t)getpid() << 32);
		for (size_t i = 0; i < sizeof(r); i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			r[i] = (unsigned char)x;
		}
	}
	char hex[33];
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	snprintf(out, n, "ctl-%s", hex);
}

bool ctl_code_refused(const char *code)
{
	static const char *const refused[] = {"no_leader", "not_leader", "shutting_down", "disk_full",
					      "disk_unavailable", "log_write_failed", "not_ready"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (strcmp(code, refused[i]) == 0)
			return true;
	return false;
}

int ctl_exit_for(int status, const char *code, bool write)
{
	if (status >= 200 && status < 300)
		return CTL_EXIT_OK;
	if (status == 400 || status == 413 || status == 414 || status == 431)
		return CTL_EXIT_USAGE;
	if (status == 404)
		return CTL_EXIT_NOT_FOUND;
	if (status == 409)
		return CTL_EXIT_CONFLICT;
	if (status == 503)
		return write && !ctl_code_refused(code ? code : "") ? CTL_EXIT_UNKNOWN : CTL_EXIT_UNAVAILABLE;
	return CTL_EXIT_FAILED;
}

int ctl_fail(const struct ctl_resp *r, bool write)
{
	/* the server's text, cleaned of control characters before it reaches a terminal */
	char *m = ctl_clean(r->code[0] ? (r->message && r->message[0] ? r->message : "(no message)")
				       : (r->body ? r->body : ""));
	char *code = ctl_clean(r->code);
	if (r->code[0])
		fprintf(stderr, "error: %s (%s)\n", m, code);
	else
		fprintf(stderr, "error: %s answered %d%s%.200s\n", r->server ? r->server : "the server", r->status,
			m[0] ? ": " : "", m);
	free(m);
	free(code);
	return ctl_exit_for(r->status, r->code, write);
}

/* Takes hr's body into r and reads the error member, if any. */
static void fill(struct ctl_resp *r, struct httpc_resp *hr)
{
	memset(r, 0, sizeof(*r));
	r->status = hr->status;
	r->body = hr->body ? hr->body : ctl_xstrdup("");
	r->body_len = hr->body ? hr->body_len : 0;
	hr->body = NULL;
	r->index = hr->has_index ? hr->index : 0;
	snprintf(r->location, sizeof(r->location), "%s", hr->location);
	snprintf(r->content_type, sizeof(r->content_type), "%s", hr->content_type);
	r->message = "";
	if (r->body_len > 0)
		r->json = json_loadb(r->body, r->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	const json_t *e = json_object_get(r->json, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	if (r->status >= 400 && code) {
		snprintf(r->code, sizeof(r->code), "%s", code);
		const char *m = json_string_value(json_object_get(e, "message"));
		r->message = m ? m : "";
	}
}

/* The header lines of a request: ours, the token, a POST's Idempotency-Key. */
struct hdrs {
	char ua[64], auth[4200], idem[300];
	const char *list[4];
};

static void headers_init(const struct ctl_client *c, bool post, struct hdrs *h)
{
	size_t n = 0;
	snprintf(h->ua, sizeof(h->ua), "User-Agent: latticectl/%s", PACKAGE_VERSION);
	h->list[n++] = h->ua;
	if (c->cfg->token) {
		snprintf(h->auth, sizeof(h->auth), "Authorization: Bearer %s", c->cfg->token);
		h->list[n++] = h->auth;
	}
	h->idem[0] = '\0';
	if (post) { /* makes sending it to another replica safe (docs/api.md) */
		char key[64];
		if (!c->idem_key)
			ctl_new_idem_key(key, sizeof(key));
		snprintf(h->idem, sizeof(h->idem), "Idempotency-Key: %s", c->idem_key ? c->idem_key : key);
		h->list[n++] = h->idem;
	}
	h->list[n] = NULL;
}

/* The leader's api_url as the replica at url sees it: its index in c->urls
 * (added when new), or -1. */
static long learn_leader(struct ctl_client *c, const char *url)
{
	struct hdrs hd; /* a GET's headers: no Idempotency-Key */
	headers_init(c, false, &hd);
	struct httpc_resp hr;
	char err[256];
	vlog(c, "* asking %s who leads (GET /v1/cluster)", url);
	int rc = httpc_do_ex(url, "GET", "/v1/cluster", NULL, hd.list, (int)c->timeout_ms, &hr, NULL, err, sizeof(err));
	long idx = -1;
	if (rc == 200) {
		json_t *j = json_loadb(hr.body, hr.body_len, 0, NULL);
		const char *api = json_string_value(json_object_get(json_object_get(j, "leader"), "api_url"));
		struct ctl_config tmp = {0};
		char e2[300];
		/* normalised as the configured servers are, so the same replica is not tried twice */
		if (api && ctl_config_add_servers(&tmp, api, e2, sizeof(e2)) == 0) {
			for (size_t i = 0; i < c->nurls && idx < 0; i++)
				if (strcmp(c->urls[i], tmp.servers[0]) == 0)
					idx = (long)i;
			if (idx < 0 && c->nurls < sizeof(c->urls) / sizeof(c->urls[0])) {
				c->urls[c->nurls] = ctl_xstrdup(tmp.servers[0]);
				idx = (long)c->nurls++;
			}
			vlog(c, "* %s names the leader %s", url, tmp.servers[0]);
		}
		ctl_config_free(&tmp);
		json_decref(j);
	}
	httpc_resp_free(&hr);
	return idx;
}

int ctl_request_at(struct ctl_client *c, const char *url, const char *method, const char *path, struct ctl_resp *r,
		   char *err, size_t errlen)
{
	struct hdrs hd;
	headers_init(c, strcmp(method, "POST") == 0, &hd);
	struct httpc_resp hr;
	vlog(c, "> %s %s%s", method, url, path);
	int rc = httpc_do_ex(url, method, path, NULL, hd.list, (int)c->timeout_ms, &hr, NULL, err, errlen);
	if (rc < 0) {
		vlog(c, "< no answer from %s: %s", url, err);
		memset(r, 0, sizeof(*r));
		return CTL_EXIT_UNAVAILABLE;
	}
	fill(r, &hr);
	r->server = url;
	vlog(c, "< %d from %s", r->status, url);
	return CTL_EXIT_OK;
}

int ctl_request(struct ctl_client *c, const char *method, const char *path, const char *body, long long extra_wait_ms,
		struct ctl_resp *r)
{
	memset(r, 0, sizeof(*r));
	bool write = strcmp(method, "GET") != 0, post = strcmp(method, "POST") == 0;
	struct hdrs hd;
	headers_init(c, post, &hd);
	const char *const *headers = hd.list;
	const char *idem = hd.idem;

	bool tried[sizeof(c->urls) / sizeof(c->urls[0])] = {false};
	long hint = -1;
	bool maybe_applied = false; /* some replica may have applied this write */
	struct ctl_buf why = {0};
	for (;;) {
		long u = -1;
		if (hint >= 0 && !tried[hint])
			u = hint;
		hint = -1;
		for (size_t k = 0; u < 0 && k < c->nurls; k++) {
			size_t i = (c->start + k) % c->nurls;
			if (!tried[i])
				u = (long)i;
		}
		if (u < 0)
			break;
		tried[u] = true;
		const char *url = c->urls[u];
		vlog(c, "> %s %s%s", method, url, path);
		if (c->cfg->token)
			vlog(c, "> Authorization: Bearer <%zu characters, hidden>", strlen(c->cfg->token));
		if (post)
			vlog(c, "> %s", idem);
		if (body)
			vlog(c, "> %s", body);
		struct httpc_resp hr;
		bool sent = false;
		char err[256];
		int64_t t0 = now_ms();
		int rc = httpc_do_ex(url, method, path, body, headers, (int)(c->timeout_ms + extra_wait_ms), &hr, &sent, err,
				     sizeof(err));
		int64_t took = now_ms() - t0;
		if (rc < 0) {
			vlog(c, "< no answer from %s after %lld ms: %s", url, (long long)took, err);
			if (rc == HTTPC_BAD_REQUEST && !sent) {
				fprintf(stderr, "error: cannot send %s %s to %s: %s\n", method, path, url, err);
				ctl_buf_free(&why);
				return CTL_EXIT_USAGE;
			}
			ctl_buf_printf(&why, "  %s: %s\n", url, err);
			if (write && sent && !post) {
				fprintf(stderr,
					"error: no answer from %s (%s) after the request was sent: the %s may or may not have "
					"been applied; read it back before retrying\n",
					url, err, method);
				ctl_buf_free(&why);
				return CTL_EXIT_UNKNOWN;
			}
			maybe_applied |= write && sent;
			continue;
		}
		fill(r, &hr);
		r->server = url;
		vlog(c, "< %d from %s in %lld ms (X-Lattice-Index %llu)%s%s", r->status, url, (long long)took,
		     (unsigned long long)r->index, r->code[0] ? ": " : "", r->code);
		if (rc == 503 && (!write || post || ctl_code_refused(r->code))) {
			char *m = ctl_clean(r->message), *code = ctl_clean(r->code[0] ? r->code : "(no code)");
			ctl_buf_printf(&why, "  %s: 503 %s: %s\n", url, code, m);
			free(m);
			free(code);
			maybe_applied |= write && !ctl_code_refused(r->code);
			if (strcmp(r->code, "no_leader") == 0 || strcmp(r->code, "not_leader") == 0)
				hint = learn_leader(c, url);
			ctl_resp_free(r);
			continue;
		}
		c->start = (size_t)u;
		ctl_buf_free(&why);
		return CTL_EXIT_OK;
	}
	fprintf(stderr, "error: no replica could take %s %s:\n%s", method, path, ctl_buf_str(&why));
	if (maybe_applied)
		fprintf(stderr, "error: a replica may have applied it; read it back, or retry with --idempotency-key %s\n",
			idem + strlen("Idempotency-Key: "));
	ctl_buf_free(&why);
	return maybe_applied ? CTL_EXIT_UNKNOWN : CTL_EXIT_UNAVAILABLE;
}
