/* test_raftnet — who may talk to this replica's raft port: raftnet_check's
 * decision for members, strangers, wrong source addresses, this replica's own
 * id, and a replica that is not in a group yet; and that raft's streams, both
 * the one a replica connects and the one it accepts, have TCP_NODELAY (with
 * Nagle on, a batch of entries larger than a segment waited ~40 ms for the
 * peer's delayed ACK). */
#include "raftnet.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in peer(const char *ip)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(40000); /* a client's ephemeral port: never compared */
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static enum raftnet_verdict check(const struct raft_configuration *c, raft_id id, const char *ip,
				  const struct raft_server **m)
{
	struct sockaddr_in a = peer(ip);
	return raftnet_check(c, 1, id, (const struct sockaddr *)&a, m);
}

/* ---- a connection through the transport --------------------------------------------- */

static int nodelay_connected = -1, nodelay_accepted = -1, connect_status = -1;

static int nodelay(struct uv_stream_s *stream)
{
	uv_os_fd_t fd;
	int on = -1;
	socklen_t len = sizeof(on);
	if (uv_fileno((uv_handle_t *)stream, &fd) != 0 || getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) != 0)
		return -1;
	return on != 0;
}

/* raft_uv_tcp allocated the stream (raft's allocator); its owner frees it. */
static void stream_closed(uv_handle_t *h)
{
	raft_free(h);
}

static void accepted(struct raft_uv_transport *t, raft_id id, const char *address, struct uv_stream_s *stream)
{
	(void)t, (void)id, (void)address;
	nodelay_accepted = nodelay(stream);
	uv_close((uv_handle_t *)stream, stream_closed);
}

static void connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
	(void)req;
	connect_status = status;
	if (status == 0) {
		nodelay_connected = nodelay(stream);
		uv_close((uv_handle_t *)stream, stream_closed);
	}
}

static void transport_closed(struct raft_uv_transport *t)
{
	(void)t;
}

/* A port nobody listens on right now. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = peer("127.0.0.1");
	a.sin_port = 0;
	socklen_t len = sizeof(a);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static void stream_options(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct raft raft;
	memset(&raft, 0, sizeof(raft)); /* an empty configuration: raftnet accepts anyone */
	struct raftnet n;
	char address[32];
	snprintf(address, sizeof(address), "127.0.0.1:%d", free_port());
	struct raft_uv_connect req;
	int rv = raftnet_init(&n, &loop, &raft);
	if (rv == 0)
		rv = n.transport.init(&n.transport, 1, address);
	if (rv == 0)
		rv = n.transport.listen(&n.transport, accepted);
	if (rv == 0)
		rv = n.transport.connect(&n.transport, &req, 2, address, connected);
	is_int(rv, 0, "a transport listens on %s and connects to itself", address);
	for (int i = 0; i < 200 && (connect_status < 0 || nodelay_accepted < 0); i++)
		uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
	is_int(connect_status, 0, "the connection is made");
	is_int(nodelay_connected, 1, "the stream raft connected has TCP_NODELAY");
	is_int(nodelay_accepted, 1, "the stream raft accepted has TCP_NODELAY");
	n.transport.close(&n.transport, transport_closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	raftnet_close(&n);
	uv_loop_close(&loop);
}

int main(void)
{
	tap_plan(21);
	stream_options();
	struct raft_configuration c;
	raft_configuration_init(&c);
	const struct raft_server *m = (const struct raft_server *)&c; /* not NULL: must be reset */

	/* not in a group yet: the leader that will add us is not known */
	is_int(check(&c, 7, "10.9.9.9", &m), RAFTNET_ACCEPT, "empty configuration: accepted");
	ok(m == NULL, "... with no member to name");

	raft_configuration_add(&c, 1, "10.0.0.1:9001", RAFT_VOTER);
	raft_configuration_add(&c, 2, "10.0.0.2:9001", RAFT_VOTER);
	raft_configuration_add(&c, 3, "10.0.0.3:9555", RAFT_STANDBY);

	is_int(check(&c, 2, "10.0.0.2", &m), RAFTNET_ACCEPT, "a member from its configured IP: accepted");
	ok(m && m->id == 2 && strcmp(m->address, "10.0.0.2:9001") == 0, "... naming the configured member");
	is_int(check(&c, 3, "10.0.0.3", &m), RAFTNET_ACCEPT, "a standby from its IP (any source port): accepted");
	is_int(check(&c, 99, "10.0.0.2", &m), RAFTNET_NOT_MEMBER, "an id outside the configuration: not_member");
	ok(m == NULL, "... and no member");
	is_int(check(&c, 0, "10.0.0.2", &m), RAFTNET_NOT_MEMBER, "id 0: not_member");
	is_int(check(&c, 2, "10.0.0.3", &m), RAFTNET_WRONG_ADDRESS, "member 2 from member 3's IP: wrong_address");
	is_int(check(&c, 2, "10.0.0.20", &m), RAFTNET_WRONG_ADDRESS, "member 2 from a longer IP: wrong_address");
	is_int(check(&c, 1, "10.0.0.1", &m), RAFTNET_SELF, "this replica's own id from its own IP: self");
	is_int(check(&c, 1, "127.0.0.1", &m), RAFTNET_WRONG_ADDRESS, "own id from elsewhere: wrong_address");
	is_int(raftnet_check(&c, 1, 2, NULL, &m), RAFTNET_NO_PEER, "a member whose source is unknown: no_peer");

	struct sockaddr_in6 v6;
	memset(&v6, 0, sizeof(v6));
	v6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.0.0.2", &v6.sin6_addr);
	is_int(raftnet_check(&c, 1, 2, (const struct sockaddr *)&v6, &m), RAFTNET_WRONG_ADDRESS,
	       "an IPv6 source: wrong_address (raft addresses are IPv4)");
	raft_configuration_close(&c);

	raft_configuration_init(&c);
	raft_configuration_add(&c, 5, "not-an-ip:9001", RAFT_VOTER);
	is_int(check(&c, 5, "10.0.0.5", &m), RAFTNET_WRONG_ADDRESS, "a member without an IPv4 address: never matched");
	raft_configuration_close(&c);

	is_str(raftnet_verdict_name(RAFTNET_NOT_MEMBER), "not_member", "verdict names are the metrics' labels");
	is_str(raftnet_verdict_name(RAFTNET_VERDICTS), "unknown", "an out-of-range verdict has a name too");
	return tap_done();
}
