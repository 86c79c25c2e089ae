#include "members.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int members_address_valid(const char *address)
{
	const char *colon = strrchr(address, ':');
	if (colon == NULL || colon == address || (size_t)(colon - address) >= 16 ||
	    strlen(address) >= MEMBERS_ADDRESS_MAX)
		return -1;
	char ip[16];
	memcpy(ip, address, (size_t)(colon - address));
	ip[colon - address] = '\0';
	struct in_addr a;
	if (inet_pton(AF_INET, ip, &a) != 1)
		return -1;
	/* Digits only, no leading zero: one address has one spelling, so two
	 * spellings of it are caught as the same address. */
	const char *p = colon + 1;
	if (*p < '1' || *p > '9' || strlen(p) > 5)
		return -1;
	for (const char *q = p; *q; q++)
		if (*q < '0' || *q > '9')
			return -1;
	long port = strtol(p, NULL, 10);
	if (port < 1 || port > 65535)
		return -1;
	/* inet_pton accepts only the dotted quad; print it back to be sure it is canonical. */
	char back[16];
	if (inet_ntop(AF_INET, &a, back, sizeof(back)) == NULL || strcmp(back, ip) != 0)
		return -1;
	return 0;
}

const struct member *members_find(const struct members *ms, uint64_t id)
{
	for (size_t i = 0; i < ms->n; i++)
		if (ms->m[i].id == id)
			return &ms->m[i];
	return NULL;
}

static int parse_one(const char *s, size_t len, struct member *out, char *err, size_t errlen)
{
	char buf[128];
	if (len >= sizeof(buf)) {
		snprintf(err, errlen, "--members: entry '%.40s...' is too long", s);
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *eq = strchr(buf, '=');
	if (eq == NULL) {
		snprintf(err, errlen, "--members: '%s' is not ID=IP:PORT", buf);
		return -1;
	}
	*eq = '\0';
	char *end;
	errno = 0;
	long long id = strtoll(buf, &end, 10);
	if (errno != 0 || end == buf || *end != '\0' || id < 1 || id > INT32_MAX || buf[0] == '+') {
		snprintf(err, errlen, "--members: '%s' is not a server id (1 to %d)", buf, INT32_MAX);
		return -1;
	}
	if (members_address_valid(eq + 1) != 0) {
		snprintf(err, errlen, "--members: '%s' (server %lld) is not an IPv4 address IP:PORT", eq + 1, id);
		return -1;
	}
	out->id = (uint64_t)id;
	snprintf(out->address, sizeof(out->address), "%s", eq + 1);
	return 0;
}

int members_parse(const char *text, struct members *out, char *err, size_t errlen)
{
	struct members ms;
	memset(&ms, 0, sizeof(ms));
	const char *p = text;
	if (*p == '\0') {
		snprintf(err, errlen, "--members: empty list");
		return -1;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (ms.n == MEMBERS_MAX) {
			snprintf(err, errlen, "--members: more than %d members", MEMBERS_MAX);
			return -1;
		}
		struct member m;
		if (parse_one(p, len, &m, err, errlen) != 0)
			return -1;
		for (size_t i = 0; i < ms.n; i++) {
			if (ms.m[i].id == m.id) {
				snprintf(err, errlen, "--members: server id %llu is listed twice",
					 (unsigned long long)m.id);
				return -1;
			}
			if (strcmp(ms.m[i].address, m.address) == 0) {
				snprintf(err, errlen, "--members: address %s is listed for servers %llu and %llu",
					 m.address, (unsigned long long)ms.m[i].id, (unsigned long long)m.id);
				return -1;
			}
		}
		/* insertion keeps the list sorted by id */
		size_t at = ms.n;
		while (at > 0 && ms.m[at - 1].id > m.id) {
			ms.m[at] = ms.m[at - 1];
			at--;
		}
		ms.m[at] = m;
		ms.n++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*out = ms;
	return 0;
}
