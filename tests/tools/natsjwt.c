/* natsjwt — nkeys, JWTs and .creds files for a nats-server in operator mode, so
 * tests can run one with authentication where `nsc` is not packaged (Debian).
 *
 *   natsjwt key operator|account|user   a new seed (SO..., SA..., SU...)
 *   natsjwt pub SEED                    its public key (O..., A..., U...)
 *   natsjwt operator OPERATOR_SEED NAME
 *       the operator's JWT (self-signed)
 *   natsjwt account OPERATOR_SEED ACCOUNT_PUB NAME [jetstream]
 *       an account's JWT, signed by the operator: no limits; with "jetstream",
 *       JetStream on (unlimited memory and file storage, streams and consumers;
 *       nats-server refuses to start if the system account has it)
 *   natsjwt user ACCOUNT_SEED USER_PUB NAME
 *       a user's JWT, signed by (so belonging to) the account: no limits
 *   natsjwt creds USER_JWT USER_SEED
 *       a .creds file: the JWT and the seed, each in its armour block (it does
 *       not check that they belong together: tests use that to make bad ones)
 * Prints to stdout; exit 0, 1 (an error, said on stderr) or 2 (usage).
 *
 * The formats (nats-io's nkeys and jwt v2):
 *   - a public key is base32 (RFC 4648 alphabet, no padding) of one prefix byte
 *     (the key's kind), the 32-byte ed25519 public key and a CRC-16/XMODEM of
 *     those 33 bytes, little-endian;
 *   - a seed is the same over two bytes (the seed prefix, then the kind: 5 bits
 *     each), the 32-byte ed25519 private seed and the CRC;
 *   - a JWT is base64url (no padding) of the header {"typ":"JWT","alg":
 *     "ed25519-nkey"}, ".", base64url of the claims, ".", base64url of the
 *     issuer's ed25519 signature over the first two parts. The claims' jti is
 *     base32 of a SHA-512/256 of the standard claims (iat, iss, name, sub);
 *     "nats" holds the type (operator, account, user), version 2 and limits.
 * ed25519 and the hashes come from OpenSSL's libcrypto; nothing of lattice.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

/* Kinds: the first base32 character of the public key (value << 3). */
enum {
	PREFIX_SEED = 18 << 3,	   /* S */
	PREFIX_OPERATOR = 14 << 3, /* O */
	PREFIX_ACCOUNT = 0,	   /* A */
	PREFIX_USER = 20 << 3,	   /* U */
};

#define RAW_LEN 32
#define PUB_B32_MAX 64	 /* 35 bytes -> 56 characters */
#define SEED_B32_MAX 64 /* 36 bytes -> 58 characters */

static int usage(void)
{
	fprintf(stderr, "usage: natsjwt key operator|account|user | pub SEED |\n"
			"       operator OPERATOR_SEED NAME | account OPERATOR_SEED ACCOUNT_PUB NAME [jetstream] |\n"
			"       user ACCOUNT_SEED USER_PUB NAME | creds USER_JWT USER_SEED\n");
	return 2;
}

static uint16_t crc16_xmodem(const unsigned char *p, size_t n)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < n; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* base32 of n bytes into out (room for 8n/5 + 2 characters), no padding. */
static void b32_encode(const unsigned char *p, size_t n, char *out)
{
	unsigned buf = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		buf = (buf << 8) | p[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = B32[(buf >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = B32[(buf << (5 - bits)) & 31];
	out[o] = '\0';
}

/* Decodes base32 text (no padding) into out (room for max bytes); the number
 * of bytes, or -1 if a character is not base32 or it does not fit. */
static int b32_decode(const char *s, unsigned char *out, size_t max)
{
	unsigned buf = 0;
	int bits = 0;
	size_t o = 0;
	for (; *s; s++) {
		const char *c = strchr(B32, toupper((unsigned char)*s));
		if (c == NULL)
			return -1;
		buf = (buf << 5) | (unsigned)(c - B32);
		bits += 5;
		if (bits >= 8) {
			if (o == max)
				return -1;
			out[o++] = (unsigned char)(buf >> (bits - 8));
			bits -= 8;
		}
	}
	return (int)o;
}

static void b64url_encode(const unsigned char *p, size_t n, char *out)
{
	static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;
	for (; i + 2 < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		out[o++] = A[v >> 18 & 63], out[o++] = A[v >> 12 & 63], out[o++] = A[v >> 6 & 63], out[o++] = A[v & 63];
	}
	if (n - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		out[o++] = A[v >> 18 & 63], out[o++] = A[v >> 12 & 63];
	} else if (n - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		out[o++] = A[v >> 18 & 63], out[o++] = A[v >> 12 & 63], out[o++] = A[v >> 6 & 63];
	}
	out[o] = '\0';
}

/* An encoded key: the prefix byte(s), the 32 raw bytes and the CRC. */
static void key_encode(const unsigned char *prefix, size_t np, const unsigned char raw[RAW_LEN], char *out)
{
	unsigned char b[2 + RAW_LEN + 2];
	memcpy(b, prefix, np);
	memcpy(b + np, raw, RAW_LEN);
	uint16_t crc = crc16_xmodem(b, np + RAW_LEN);
	b[np + RAW_LEN] = (unsigned char)(crc & 0xff);
	b[np + RAW_LEN + 1] = (unsigned char)(crc >> 8);
	b32_encode(b, np + RAW_LEN + 2, out);
}

static void seed_encode(int kind, const unsigned char raw[RAW_LEN], char out[SEED_B32_MAX])
{
	unsigned char p[2] = {(unsigned char)(PREFIX_SEED | kind >> 5), (unsigned char)((kind & 31) << 3)};
	key_encode(p, 2, raw, out);
}

/* Decodes a seed: its kind and raw bytes; -1 (said on stderr) if it is none. */
static int seed_decode(const char *s, int *kind, unsigned char raw[RAW_LEN])
{
	unsigned char b[40];
	if (b32_decode(s, b, sizeof(b)) != 2 + RAW_LEN + 2 || (b[0] & 0xf8) != PREFIX_SEED) {
		fprintf(stderr, "natsjwt: '%.12s...' is not an nkey seed\n", s);
		return -1;
	}
	uint16_t crc = (uint16_t)(b[2 + RAW_LEN] | b[2 + RAW_LEN + 1] << 8);
	if (crc != crc16_xmodem(b, 2 + RAW_LEN)) {
		fprintf(stderr, "natsjwt: seed '%.12s...': bad checksum\n", s);
		return -1;
	}
	*kind = (b[0] & 7) << 5 | b[1] >> 3;
	memcpy(raw, b + 2, RAW_LEN);
	return 0;
}

/* Checks that s is a public key of the kind; -1 (said on stderr) if not. */
static int pub_check(const char *s, int kind, const char *what)
{
	unsigned char b[40];
	if (b32_decode(s, b, sizeof(b)) != 1 + RAW_LEN + 2 || b[0] != kind ||
	    (uint16_t)(b[1 + RAW_LEN] | b[2 + RAW_LEN] << 8) != crc16_xmodem(b, 1 + RAW_LEN)) {
		fprintf(stderr, "natsjwt: '%s' is not the public key of %s\n", s, what);
		return -1;
	}
	return 0;
}

/* A key pair from a seed of the given kind: EVP key and encoded public key. */
static EVP_PKEY *keypair(const char *seed, int want, const char *what, char pub[PUB_B32_MAX])
{
	int kind;
	unsigned char raw[RAW_LEN], rpub[RAW_LEN];
	size_t nrpub = sizeof(rpub);
	if (seed_decode(seed, &kind, raw) < 0)
		return NULL;
	if (kind != want) {
		fprintf(stderr, "natsjwt: that seed is not %s's\n", what);
		return NULL;
	}
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, RAW_LEN);
	if (k == NULL || EVP_PKEY_get_raw_public_key(k, rpub, &nrpub) != 1 || nrpub != RAW_LEN) {
		fprintf(stderr, "natsjwt: libcrypto cannot make an ed25519 key\n");
		EVP_PKEY_free(k);
		return NULL;
	}
	unsigned char p = (unsigned char)kind;
	key_encode(&p, 1, rpub, pub);
	return k;
}

static int kind_of(const char *name)
{
	return strcmp(name, "operator") == 0 ? PREFIX_OPERATOR
	       : strcmp(name, "account") == 0 ? PREFIX_ACCOUNT
	       : strcmp(name, "user") == 0    ? PREFIX_USER
					      : -1;
}

/* Names go into JSON unescaped: letters, digits, '-' and '_' only. */
static int name_check(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return -1;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return -1;
	return 0;
}

/* Prints the JWT of the claims (sub, name, and the "nats" object's JSON),
 * issued and signed by key k whose public key is iss. */
static int jwt_print(EVP_PKEY *k, const char *iss, const char *sub, const char *name, const char *nats)
{
	long long iat = (long long)time(NULL);
	char std[512], claims[2048], jti[PUB_B32_MAX];
	unsigned char h[32];
	unsigned hn = 0;
	snprintf(std, sizeof(std), "{\"iat\":%lld,\"iss\":\"%s\",\"name\":\"%s\",\"sub\":\"%s\"}", iat, iss, name, sub);
	if (EVP_Digest(std, strlen(std), h, &hn, EVP_sha512_256(), NULL) != 1 || hn != sizeof(h)) {
		fprintf(stderr, "natsjwt: SHA-512/256 failed\n");
		return 1;
	}
	b32_encode(h, hn, jti);
	snprintf(claims, sizeof(claims), "{\"jti\":\"%s\",\"iat\":%lld,\"iss\":\"%s\",\"name\":\"%s\",\"sub\":\"%s\",\"nats\":%s}",
		 jti, iat, iss, name, sub, nats);
	static const char header[] = "{\"typ\":\"JWT\",\"alg\":\"ed25519-nkey\"}";
	char signed_part[4096], sig64[128];
	b64url_encode((const unsigned char *)header, strlen(header), signed_part);
	size_t n = strlen(signed_part);
	signed_part[n++] = '.';
	b64url_encode((const unsigned char *)claims, strlen(claims), signed_part + n);
	unsigned char sig[64];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) == 1 &&
		 EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)signed_part, strlen(signed_part)) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		fprintf(stderr, "natsjwt: ed25519 signing failed\n");
		return 1;
	}
	b64url_encode(sig, siglen, sig64);
	printf("%s.%s\n", signed_part, sig64);
	return 0;
}

/* sign ISSUER_KIND ISSUER_SEED SUBJECT_KIND SUBJECT_PUB (NULL: self) NAME NATS */
static int issue(int ikind, const char *iwhat, const char *iseed, int skind, const char *swhat, const char *sub,
		 const char *name, const char *nats)
{
	char iss[PUB_B32_MAX];
	if (name_check(name) < 0) {
		fprintf(stderr, "natsjwt: name '%s': letters, digits, '-' and '_' only (1 to 64)\n", name);
		return 1;
	}
	EVP_PKEY *k = keypair(iseed, ikind, iwhat, iss);
	if (k == NULL)
		return 1;
	int rc = sub && pub_check(sub, skind, swhat) < 0 ? 1 : jwt_print(k, iss, sub ? sub : iss, name, nats);
	EVP_PKEY_free(k);
	return rc;
}

/* 0 storage means no JetStream for the account. */
static const char ACCOUNT_NATS[] =
	"{\"limits\":{\"subs\":-1,\"data\":-1,\"payload\":-1,\"imports\":-1,\"exports\":-1,\"wildcards\":true,"
	"\"conn\":-1,\"leaf\":-1,\"mem_storage\":0,\"disk_storage\":0,\"streams\":0,\"consumer\":0},"
	"\"default_permissions\":{\"pub\":{},\"sub\":{}},\"type\":\"account\",\"version\":2}";
static const char ACCOUNT_JS_NATS[] =
	"{\"limits\":{\"subs\":-1,\"data\":-1,\"payload\":-1,\"imports\":-1,\"exports\":-1,\"wildcards\":true,"
	"\"conn\":-1,\"leaf\":-1,\"mem_storage\":-1,\"disk_storage\":-1,\"streams\":-1,\"consumer\":-1},"
	"\"default_permissions\":{\"pub\":{},\"sub\":{}},\"type\":\"account\",\"version\":2}";
static const char USER_NATS[] =
	"{\"pub\":{},\"sub\":{},\"subs\":-1,\"data\":-1,\"payload\":-1,\"type\":\"user\",\"version\":2}";
static const char OPERATOR_NATS[] = "{\"type\":\"operator\",\"version\":2}";

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	if (strcmp(cmd, "key") == 0 && argc == 3) {
		int kind = kind_of(argv[2]);
		unsigned char raw[RAW_LEN];
		char seed[SEED_B32_MAX];
		if (kind < 0)
			return usage();
		if (RAND_bytes(raw, sizeof(raw)) != 1) {
			fprintf(stderr, "natsjwt: no random bytes from libcrypto\n");
			return 1;
		}
		seed_encode(kind, raw, seed);
		printf("%s\n", seed);
		return 0;
	}
	if (strcmp(cmd, "pub") == 0 && argc == 3) {
		int kind;
		unsigned char raw[RAW_LEN];
		char pub[PUB_B32_MAX];
		if (seed_decode(argv[2], &kind, raw) < 0)
			return 1;
		EVP_PKEY *k = keypair(argv[2], kind, "a key", pub);
		if (k == NULL)
			return 1;
		EVP_PKEY_free(k);
		printf("%s\n", pub);
		return 0;
	}
	if (strcmp(cmd, "operator") == 0 && argc == 4)
		return issue(PREFIX_OPERATOR, "an operator", argv[2], PREFIX_OPERATOR, "an operator", NULL, argv[3],
			     OPERATOR_NATS);
	if (strcmp(cmd, "account") == 0 && (argc == 5 || (argc == 6 && strcmp(argv[5], "jetstream") == 0)))
		return issue(PREFIX_OPERATOR, "an operator", argv[2], PREFIX_ACCOUNT, "an account", argv[3], argv[4],
			     argc == 6 ? ACCOUNT_JS_NATS : ACCOUNT_NATS);
	if (strcmp(cmd, "user") == 0 && argc == 5)
		return issue(PREFIX_ACCOUNT, "an account", argv[2], PREFIX_USER, "a user", argv[3], argv[4], USER_NATS);
	if (strcmp(cmd, "creds") == 0 && argc == 4) {
		printf("-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n"
		       "************************* IMPORTANT *************************\n"
		       "NKEY Seed printed below can be used to sign and prove identity.\n"
		       "NKEYs are sensitive and should be treated as secrets.\n\n"
		       "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n\n"
		       "*************************************************************\n",
		       argv[2], argv[3]);
		return 0;
	}
	return usage();
}
