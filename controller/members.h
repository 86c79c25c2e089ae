/* members — the --members list a group is bootstrapped from:
 * "ID=IP:PORT,ID=IP:PORT,...", Raft id and Raft address of every voter.
 * Pure: no I/O. */
#ifndef LATTICE_MEMBERS_H
#define LATTICE_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

#define MEMBERS_MAX 16 /* a Raft group beyond 7 voters only gets slower */
#define MEMBERS_ADDRESS_MAX 64

struct member {
	uint64_t id;
	char address[MEMBERS_ADDRESS_MAX]; /* IPv4 a.b.c.d:port, as raft_uv_tcp wants it */
};

struct members {
	struct member m[MEMBERS_MAX];
	size_t n;
};

/* Parses text into *out (sorted by id). Ids are 1..2^31-1, each once; addresses
 * are IPv4 a.b.c.d:port with a port of 1..65535, each once. Returns 0, or -1 with
 * a message naming the bad entry in err. */
int members_parse(const char *text, struct members *out, char *err, size_t errlen);
/* The member with id, or NULL. */
const struct member *members_find(const struct members *ms, uint64_t id);
/* Checks "a.b.c.d:port" (port 1..65535). Returns 0 or -1. */
int members_address_valid(const char *address);

#endif
