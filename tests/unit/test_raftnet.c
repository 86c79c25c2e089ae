/* test_raftnet — who may talk to this replica's raft port: raftnet_check's
 * decision for members, strangers, wrong source addresses, this replica's own
 * id, and a replica that is not in a group yet. */
#include "raftnet.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

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

int main(void)
{
	tap_plan(17);
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
