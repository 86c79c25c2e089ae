#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct http {
	struct MHD_Daemon *d;
	struct http_config cfg;
	int port;
	MHD_socket quiesced_fd;
};

/* Microseconds: most answers take well under a millisecond, and /metrics has
 * sub-millisecond buckets. */
static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void http_error(struct http_resp *resp, int status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_decref(resp->body);
	resp->status = status;
	resp->body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	if (resp->body == NULL) /* message not valid UTF-8: say so rather than fail */
		resp->body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", "(unprintable message)");
}

static enum MHD_Result send_resp(struct http_req *req, struct http_resp *resp)
{
	char *buf = NULL;
	size_t len = 0;
	const char *ctype = resp->content_type;
	if (resp->body != NULL) {
		buf = json_dumps(resp->body, JSON_COMPACT);
		if (buf == NULL) {
			resp->status = 500;
			buf = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode response\"}}");
		}
		len = buf ? strlen(buf) : 0;
		ctype = ctype ? ctype : "application/json";
	} else if (resp->text != NULL) {
		buf = resp->text;
		resp->text = NULL;
		len = strlen(buf);
		ctype = ctype ? ctype : "text/plain; charset=utf-8";
	}
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, buf ? buf : (void *)"", buf ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (r == NULL) {
		free(buf);
		return MHD_NO;
	}
	if (ctype)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	char idx[32];
	snprintf(idx, sizeof(idx), "%llu", (unsigned long long)resp->index);
	MHD_add_response_header(r, "X-Lattice-Index", idx);
	if (resp->location[0])
		MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, resp->location);
	if (resp->allow[0])
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
	enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned)resp->status, r);
	MHD_destroy_response(r);
	req->responded = true;
	struct http *h = req->http;
	if (h->cfg.observe)
		h->cfg.observe(h->cfg.arg, req, resp->status, (double)(now_us() - req->started_us) / 1e6);
	json_decref(resp->body);
	resp->body = NULL;
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http *h = cls;
	struct http_req *req = *con_cls;
	(void)version;
	if (req == NULL) {
		req = calloc(1, sizeof(*req));
		if (req == NULL)
			return MHD_NO;
		req->conn = conn;
		req->method = method;
		req->url = url;
		req->http = h;
		req->started_us = now_us();
		*con_cls = req;
		/* Refuse an announced oversized body before reading any of it. */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > HTTP_BODY_MAX) {
			struct http_resp resp = {0};
			req->too_large = true;
			http_error(&resp, 413, "payload_too_large", "request body is over the %d byte limit",
				   HTTP_BODY_MAX);
			resp.index = h->cfg.index ? h->cfg.index(h->cfg.arg) : 0;
			return send_resp(req, &resp);
		}
		return MHD_YES;
	}
	if (req->responded) {
		/* Already answered (413): swallow whatever body still arrives. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		/* A body without Content-Length grew over the limit: drop the rest and
		 * answer 413 once it has been read (libmicrohttpd takes no answer
		 * in the middle of an upload). */
		if (req->too_large || req->body_len + *upload_data_size > HTTP_BODY_MAX) {
			req->too_large = true;
			*upload_data_size = 0;
			return MHD_YES;
		}
		char *nb = realloc(req->body, req->body_len + *upload_data_size + 1);
		if (nb == NULL)
			return MHD_NO;
		memcpy(nb + req->body_len, upload_data, *upload_data_size);
		req->body = nb;
		req->body_len += *upload_data_size;
		req->body[req->body_len] = '\0';
		*upload_data_size = 0;
		return MHD_YES;
	}
	struct http_resp resp = {0};
	if (req->too_large) {
		http_error(&resp, 413, "payload_too_large", "request body is over the %d byte limit", HTTP_BODY_MAX);
		resp.index = h->cfg.index ? h->cfg.index(h->cfg.arg) : 0;
		return send_resp(req, &resp);
	}
	enum http_next next = h->cfg.handler(h->cfg.arg, req, &resp);
	if (next == HTTP_SUSPEND) {
		json_decref(resp.body);
		free(resp.text);
		return MHD_YES;
	}
	if (resp.status == 0) {
		http_error(&resp, 500, "internal", "handler produced no response");
		resp.index = h->cfg.index ? h->cfg.index(h->cfg.arg) : 0;
	}
	enum MHD_Result r = send_resp(req, &resp);
	free(resp.text);
	return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct http_req *req = *con_cls;
	if (req == NULL)
		return;
	if (req->state_free)
		req->state_free(req->state);
	free(req->body);
	free(req);
	*con_cls = NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes %HH in the URL and query values, except %00: a NUL would cut the
 * string short ("/v1/nodes/victim%00junk" would name node "victim"), so it stays
 * as the three characters "%00", which no id or value accepts. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	char *w = s;
	for (const char *r = s; *r;) {
		int hi, lo;
		if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo) != 0) {
			*w++ = (char)(hi * 16 + lo);
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

static void on_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
	(void)cls;
	log_error("libmicrohttpd failed at %s:%u: %s", file, line, reason ? reason : "");
	abort();
}

int http_start(struct http **out, const struct http_config *cfg, char *err, size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->cfg = *cfg;
	h->quiesced_fd = MHD_INVALID_SOCKET;
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)cfg->port);
	if (inet_pton(AF_INET, cfg->host, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "--listen: '%s' is not an IPv4 address", cfg->host);
		free(h);
		return -1;
	}
	MHD_set_panic_func(on_panic, NULL);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned int)1024, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned int)60, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
				MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_UNESCAPE_CALLBACK,
				unescape, (void *)NULL, MHD_OPTION_NOTIFY_COMPLETED,
				on_completed, (void *)h, MHD_OPTION_END);
	if (h->d == NULL) {
		snprintf(err, errlen, "cannot listen on %s:%d (in use, or not an address of this host)", cfg->host,
			 cfg->port);
		free(h);
		return -1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : cfg->port;
	*out = h;
	return 0;
}

int http_port(const struct http *h)
{
	return h->port;
}

void http_quiesce(struct http *h)
{
	if (h->quiesced_fd == MHD_INVALID_SOCKET)
		h->quiesced_fd = MHD_quiesce_daemon(h->d);
}

void http_stop(struct http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	if (h->quiesced_fd != MHD_INVALID_SOCKET)
		close(h->quiesced_fd);
	free(h);
}

void http_suspend(struct http_req *req)
{
	MHD_suspend_connection(req->conn);
}

void http_resume(struct http_req *req)
{
	MHD_resume_connection(req->conn);
}

const char *http_query(struct http_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(struct http_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, key);
}
