#include "raftnet.h"

#include <arpa/inet.h>
#include <assert.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static const char *const verdict_names[RAFTNET_VERDICTS] = {"accepted", "not_member", "wrong_address", "self",
							     "no_peer"};

static const char *const verdict_text[RAFTNET_VERDICTS] = {
	"accepted",
	"not a server of the configuration",
	"the source IP is not this server's configured IP",
	"that is this replica's own id",
	"its source address cannot be read",
};

const char *raftnet_verdict_name(enum raftnet_verdict v)
{
	return v < RAFTNET_VERDICTS ? verdict_names[v] : "unknown";
}

uint64_t raftnet_refused(struct raftnet *n, enum raftnet_verdict v)
{
	return v < RAFTNET_VERDICTS ? atomic_load(&n->refused[v]) : 0;
}

/* The IPv4 address of "a.b.c.d:port" (raft's address syntax); -1 when the text
 * is not one. */
static int address_ip4(const char *address, struct in_addr *out)
{
	const char *colon = strrchr(address, ':');
	size_t len = colon ? (size_t)(colon - address) : strlen(address);
	char host[INET_ADDRSTRLEN];
	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, address, len);
	host[len] = '\0';
	return inet_pton(AF_INET, host, out) == 1 ? 0 : -1;
}

enum raftnet_verdict raftnet_check(const struct raft_configuration *conf, raft_id self, raft_id id,
				   const struct sockaddr *peer, const struct raft_server **member)
{
	*member = NULL;
	if (conf->n == 0)
		return RAFTNET_ACCEPT; /* not in a group yet: the leader is not known */
	const struct raft_server *s = NULL;
	for (unsigned i = 0; i < conf->n && s == NULL; i++)
		if (conf->servers[i].id == id)
			s = &conf->servers[i];
	if (s == NULL)
		return RAFTNET_NOT_MEMBER;
	if (peer == NULL)
		return RAFTNET_NO_PEER;
	struct in_addr want;
	if (peer->sa_family != AF_INET || address_ip4(s->address, &want) != 0 ||
	    ((const struct sockaddr_in *)peer)->sin_addr.s_addr != want.s_addr)
		return RAFTNET_WRONG_ADDRESS;
	if (id == self)
		return RAFTNET_SELF;
	*member = s;
	return RAFTNET_ACCEPT;
}

/* ---- the transport ------------------------------------------------------------------------ */

static void maybe_closed(struct raftnet *n)
{
	if (!n->closing || !n->tcp_closed || n->closing_streams > 0 || n->close_cb == NULL)
		return;
	raft_uv_transport_close_cb cb = n->close_cb;
	n->close_cb = NULL;
	cb(&n->transport);
}

/* A refused stream's handle is closed: raft_uv_tcp allocated it with
 * raft_malloc, and the accept callback owns it, so it is freed here. */
static void refused_closed(uv_handle_t *h)
{
	struct raftnet *n = h->data;
	raft_free(h);
	n->closing_streams--;
	maybe_closed(n);
}

static void log_refusal(struct raftnet *n, raft_id id, const char *ip, enum raftnet_verdict v)
{
	uint64_t now = uv_now(n->loop);
	if (n->log_lines > 0 && now - n->log_window_ms >= RAFTNET_LOG_WINDOW_MS) {
		if (n->log_suppressed > 0)
			log_warn("raft port: %llu more refused connections were not logged (at most %d lines "
				 "per %d s; lattice_raft_refused_connections_total counts all)",
				 (unsigned long long)n->log_suppressed, RAFTNET_LOG_BURST,
				 RAFTNET_LOG_WINDOW_MS / 1000);
		n->log_lines = 0;
		n->log_suppressed = 0;
	}
	if (n->log_lines == 0)
		n->log_window_ms = now;
	if (n->log_lines >= RAFTNET_LOG_BURST) {
		n->log_suppressed++;
		return;
	}
	n->log_lines++;
	log_warn("raft port: refused a connection from %s claiming server id %llu: %s", ip,
		 (unsigned long long)id, verdict_text[v]);
}

/* raft_uv_tcp's accept callback: the handshake is complete. `address` is what
 * the peer claimed; it is not read (nor NUL-terminated by anything but the
 * peer). */
static void on_accept(struct raft_uv_transport *tcp, raft_id id, const char *address, struct uv_stream_s *stream)
{
	struct raftnet *n = tcp->data;
	(void)address;
	struct sockaddr_storage ss;
	int len = (int)sizeof(ss);
	const struct sockaddr *peer = NULL;
	if (uv_tcp_getpeername((uv_tcp_t *)stream, (struct sockaddr *)&ss, &len) == 0)
		peer = (const struct sockaddr *)&ss;
	const struct raft_server *member;
	enum raftnet_verdict v = raftnet_check(&n->raft->configuration, n->raft->id, id, peer, &member);
	if (v == RAFTNET_NOT_MEMBER && n->learned.n > 0)
		v = raftnet_check(&n->learned, n->raft->id, id, peer, &member);
	if (v == RAFTNET_NOT_MEMBER)
		n->want_learn = true;
	if (v == RAFTNET_ACCEPT) {
		uv_tcp_nodelay((uv_tcp_t *)stream, 1);
		/* raft copies the address; the configured one, not the claim. */
		n->accept_cb(&n->transport, id, member ? member->address : address, stream);
		return;
	}
	atomic_fetch_add(&n->refused[v], 1);
	char ip[INET6_ADDRSTRLEN + 8] = "an unknown address";
	if (peer && peer->sa_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)peer, ip, sizeof(ip));
	else if (peer && peer->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)peer, ip, sizeof(ip));
	log_refusal(n, id, ip, v);
	/* The accept callback owns the stream: close it and free it. */
	stream->data = n;
	n->closing_streams++;
	uv_close((uv_handle_t *)stream, refused_closed);
}

static int t_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	struct raftnet *n = t->impl;
	int rv = n->tcp.init(&n->tcp, id, address);
	if (rv != 0)
		snprintf(t->errmsg, sizeof(t->errmsg), "%s", n->tcp.errmsg);
	return rv;
}

static int t_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	struct raftnet *n = t->impl;
	n->accept_cb = cb;
	int rv = n->tcp.listen(&n->tcp, on_accept);
	if (rv != 0)
		snprintf(t->errmsg, sizeof(t->errmsg), "%s", n->tcp.errmsg);
	return rv;
}

/* Connects in progress, so that each new stream gets TCP_NODELAY before raft
 * has it: raft_uv_tcp leaves Nagle on, and a batch of entries larger than a
 * segment then waited ~40 ms for the follower's delayed ACK. raft_uv owns
 * req->data, so the callback raft gave is found by req, process-wide (a test
 * may run several transports on several threads). */
#define CONNECTING_MAX 64
static struct {
	struct raft_uv_connect *req;
	raft_uv_connect_cb cb;
} connecting[CONNECTING_MAX];
static pthread_mutex_t connecting_lock = PTHREAD_MUTEX_INITIALIZER;

/* Records req's callback; false when the table is full (then raft's callback
 * is used as it is, and that stream keeps Nagle). */
static bool connecting_put(struct raft_uv_connect *req, raft_uv_connect_cb cb)
{
	bool ok = false;
	pthread_mutex_lock(&connecting_lock);
	for (unsigned i = 0; i < CONNECTING_MAX && !ok; i++)
		if (connecting[i].req == NULL) {
			connecting[i].req = req;
			connecting[i].cb = cb;
			ok = true;
		}
	pthread_mutex_unlock(&connecting_lock);
	return ok;
}

static raft_uv_connect_cb connecting_take(struct raft_uv_connect *req)
{
	raft_uv_connect_cb cb = NULL;
	pthread_mutex_lock(&connecting_lock);
	for (unsigned i = 0; i < CONNECTING_MAX && cb == NULL; i++)
		if (connecting[i].req == req) {
			cb = connecting[i].cb;
			connecting[i].req = NULL;
		}
	pthread_mutex_unlock(&connecting_lock);
	return cb;
}

static void on_connect(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
	raft_uv_connect_cb cb = connecting_take(req);
	assert(cb != NULL);
	if (status == 0 && stream != NULL)
		uv_tcp_nodelay((uv_tcp_t *)stream, 1);
	cb(req, stream, status);
}

/* Outgoing connections go to members raft chose: passed through, with
 * on_connect in between. */
static int t_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id, const char *address,
		     raft_uv_connect_cb cb)
{
	struct raftnet *n = t->impl;
	bool wrapped = connecting_put(req, cb);
	int rv = n->tcp.connect(&n->tcp, req, id, address, wrapped ? on_connect : cb);
	if (rv != 0) {
		if (wrapped)
			connecting_take(req);
		snprintf(t->errmsg, sizeof(t->errmsg), "%s", n->tcp.errmsg);
	}
	return rv;
}

static void tcp_closed(struct raft_uv_transport *tcp)
{
	struct raftnet *n = tcp->data;
	n->tcp_closed = true;
	maybe_closed(n);
}

/* raft's close: raft_uv_tcp stops accepting and cancels connects; raft is told
 * once that is done and every refused stream's handle is closed too. */
static void t_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct raftnet *n = t->impl;
	n->closing = true;
	n->close_cb = cb;
	n->tcp.close(&n->tcp, tcp_closed);
}

int raftnet_learn(struct raftnet *n, const struct raft_configuration *conf)
{
	struct raft_configuration copy;
	raft_configuration_init(&copy);
	for (unsigned i = 0; i < conf->n; i++) {
		int rv = raft_configuration_add(&copy, conf->servers[i].id, conf->servers[i].address,
						conf->servers[i].role);
		if (rv != 0) {
			raft_configuration_close(&copy);
			return rv;
		}
	}
	raft_configuration_close(&n->learned);
	n->learned = copy;
	n->want_learn = false;
	return 0;
}

int raftnet_init(struct raftnet *n, uv_loop_t *loop, const struct raft *raft)
{
	memset(n, 0, sizeof(*n));
	n->raft = raft;
	n->loop = loop;
	raft_configuration_init(&n->learned);
	n->tcp.data = n; /* raft_uv_tcp_init keeps `data` */
	int rv = raft_uv_tcp_init(&n->tcp, loop);
	if (rv != 0)
		return rv;
	n->transport.impl = n;
	n->transport.init = t_init;
	n->transport.listen = t_listen;
	n->transport.connect = t_connect;
	n->transport.close = t_close;
	return 0;
}

void raftnet_close(struct raftnet *n)
{
	raft_uv_tcp_close(&n->tcp);
	raft_configuration_close(&n->learned);
}
