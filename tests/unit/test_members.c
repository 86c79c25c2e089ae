/* test_members — the --members list (members.c): parsed into a list sorted by
 * id; ids 1..2^31-1 and IPv4 addresses with a port 1..65535, each once; at most
 * MEMBERS_MAX entries; every error names the bad entry and leaves the output
 * as it was. Also members_find and members_address_valid. */
#include "members.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>

static char err[256];

/* members_parse on text that must be refused: 1 when it was, *out untouched,
 * and err holds want. */
static int refused(const char *text, const char *want)
{
	struct members out;
	memset(&out, 0x5a, sizeof(out));
	struct members before = out;
	err[0] = '\0';
	int rc = members_parse(text, &out, err, sizeof(err));
	int good = rc == -1 && memcmp(&out, &before, sizeof(out)) == 0 && strstr(err, want) != NULL;
	if (!good)
		tap_diag("  '%s': rc %d, err '%s' (want '%s')", text, rc, err, want);
	return good;
}

/* members_parse on text that must be accepted with n members. */
static int accepted(const char *text, struct members *out, size_t n)
{
	err[0] = '\0';
	int rc = members_parse(text, out, err, sizeof(err));
	if (rc != 0 || out->n != n) {
		tap_diag("  '%s': rc %d, n %zu (want %zu), err '%s'", text, rc, rc == 0 ? out->n : 0, n, err);
		return 0;
	}
	return 1;
}

int main(void)
{
	tap_plan(51);
	struct members ms;

	/* ---- well-formed lists ---- */
	ok(accepted("1=127.0.0.1:9001", &ms, 1), "one member");
	ok(ms.m[0].id == 1 && strcmp(ms.m[0].address, "127.0.0.1:9001") == 0, "... its id and address");
	ok(accepted("3=10.0.0.3:7003,1=10.0.0.1:7001,2=10.0.0.2:7002", &ms, 3), "three members, out of order");
	ok(ms.m[0].id == 1 && ms.m[1].id == 2 && ms.m[2].id == 3, "... sorted by id");
	ok(strcmp(ms.m[0].address, "10.0.0.1:7001") == 0 && strcmp(ms.m[1].address, "10.0.0.2:7002") == 0 &&
		   strcmp(ms.m[2].address, "10.0.0.3:7003") == 0,
	   "... each with its own address");
	ok(accepted("20=127.0.0.1:1,7=127.0.0.1:2,13=127.0.0.1:3,2=127.0.0.1:4", &ms, 4),
	   "ids compared as numbers, not text");
	ok(ms.m[0].id == 2 && ms.m[1].id == 7 && ms.m[2].id == 13 && ms.m[3].id == 20 &&
		   strcmp(ms.m[3].address, "127.0.0.1:1") == 0,
	   "... 2 7 13 20");
	ok(accepted("2147483647=127.0.0.1:65535,1=0.0.0.0:1", &ms, 2), "the largest id (2^31-1) and port (65535)");
	ok(ms.m[1].id == 2147483647u && strcmp(ms.m[1].address, "127.0.0.1:65535") == 0, "... kept exactly");
	ok(accepted("1=255.255.255.255:80,2=127.0.0.1:80", &ms, 2), "the same port on two IPs");

	char text[2048];
	size_t len = 0;
	for (int i = MEMBERS_MAX; i >= 1; i--)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%d=127.0.0.1:%d", len ? "," : "", i, 9000 + i);
	ok(accepted(text, &ms, MEMBERS_MAX), "MEMBERS_MAX (%d) members", MEMBERS_MAX);
	int sorted = 1;
	for (size_t i = 0; i < ms.n; i++) {
		char want[32];
		snprintf(want, sizeof(want), "127.0.0.1:%zu", 9000 + i + 1);
		sorted &= ms.m[i].id == i + 1 && strcmp(ms.m[i].address, want) == 0;
	}
	ok(sorted, "... sorted, each with its address");
	snprintf(text + len, sizeof(text) - len, ",%d=127.0.0.1:%d", MEMBERS_MAX + 1, 9000 + MEMBERS_MAX + 1);
	ok(refused(text, "more than 16 members"), "one more than MEMBERS_MAX is refused");

	/* ---- members_find ---- */
	ok(accepted("5=127.0.0.1:5,9=127.0.0.1:9", &ms, 2), "two members");
	const struct member *m = members_find(&ms, 9);
	ok(m != NULL && m->id == 9 && strcmp(m->address, "127.0.0.1:9") == 0, "members_find finds one");
	ok(members_find(&ms, 7) == NULL && members_find(&ms, 0) == NULL, "... and not an id that is not listed");

	/* ---- every error ---- */
	ok(refused("", "--members: empty list"), "an empty list");
	ok(refused("1=127.0.0.1:1,", "'' is not ID=IP:PORT"), "a trailing comma (an empty entry)");
	ok(refused(",1=127.0.0.1:1", "'' is not ID=IP:PORT"), "a leading comma");
	ok(refused("1=127.0.0.1:1,,2=127.0.0.1:2", "'' is not ID=IP:PORT"), "two commas");
	ok(refused("127.0.0.1:9001", "'127.0.0.1:9001' is not ID=IP:PORT"), "an entry without ID=");
	ok(refused("=127.0.0.1:1", "'' is not a server id (1 to 2147483647)"), "an empty id");
	ok(refused("x=127.0.0.1:1", "'x' is not a server id"), "an id that is no number");
	ok(refused("0=127.0.0.1:1", "'0' is not a server id"), "id 0");
	ok(refused("-1=127.0.0.1:1", "'-1' is not a server id"), "a negative id");
	ok(refused("+1=127.0.0.1:1", "'+1' is not a server id"), "a signed id");
	ok(refused("2147483648=127.0.0.1:1", "'2147483648' is not a server id"), "id 2^31");
	ok(refused("99999999999999999999=127.0.0.1:1", "is not a server id"), "an id beyond 64 bits");
	ok(refused("1x=127.0.0.1:1", "'1x' is not a server id"), "an id with junk after it");
	ok(refused("1=127.0.0.1", "'127.0.0.1' (server 1) is not an IPv4 address IP:PORT"), "an address without port");
	ok(refused("1=127.0.0.1:", "is not an IPv4 address IP:PORT"), "an empty port");
	ok(refused("1=127.0.0.1:0", "'127.0.0.1:0' (server 1)"), "port 0");
	ok(refused("1=127.0.0.1:65536", "'127.0.0.1:65536' (server 1)"), "port 65536");
	ok(refused("1=127.0.0.1:-1", "is not an IPv4 address"), "a negative port");
	ok(refused("1=127.0.0.1:+80", "is not an IPv4 address"), "a signed port");
	ok(refused("1=127.0.0.1:80x", "is not an IPv4 address"), "a port with junk after it");
	ok(refused("1=:80", "':80' (server 1)"), "no IP");
	ok(refused("1=localhost:9001", "'localhost:9001' (server 1) is not an IPv4 address"), "a host name");
	ok(refused("1=[::1]:9001", "is not an IPv4 address"), "an IPv6 address");
	ok(refused("1=::1:9001", "is not an IPv4 address"), "an IPv6 address without brackets");
	ok(refused("1=256.0.0.1:80", "is not an IPv4 address"), "an octet beyond 255");
	ok(refused("1=10.0.1:80", "is not an IPv4 address"), "three octets");
	ok(refused("1=1234567890123456:80", "is not an IPv4 address"), "an IP part of 16 characters");
	char longe[200];
	snprintf(longe, sizeof(longe), "1=127.0.0.1:%0150d", 80);
	ok(refused(longe, "is too long"), "an entry of 160 characters");
	ok(refused("1=127.0.0.1:1,2=127.0.0.2:2,1=127.0.0.3:3", "server id 1 is listed twice"), "a repeated id");
	ok(refused("1=127.0.0.1:1,2=127.0.0.1:1", "address 127.0.0.1:1 is listed for servers 1 and 2"),
	   "a repeated address");

	/* The same address written two ways is still one address (Raft would have two
	 * servers on one socket). */
	ok(refused("1=127.0.0.1:80,2=127.0.0.1:080", "is not an IPv4 address"),
	   "a port with a leading zero is refused (one address, one spelling)");
	ok(refused("1=127.0.0.1: 80", "is not an IPv4 address"), "a space before the port is refused");
	ok(refused("1=127.000.0.1:80", "is not an IPv4 address"), "an address with a padded octet is refused");

	/* ---- members_address_valid ---- */
	ok(members_address_valid("192.168.1.20:7000") == 0 && members_address_valid("127.0.0.1:65535") == 0,
	   "members_address_valid: IPv4 with a port");
	ok(members_address_valid("127.0.0.1") != 0 && members_address_valid("host:80") != 0 &&
		   members_address_valid("127.0.0.1:0") != 0 && members_address_valid("") != 0 &&
		   members_address_valid(":80") != 0,
	   "... and not without one, a host name, port 0, nothing");
	return tap_done();
}
