/* test_digest — SHA-256 and CRC-32C against published test vectors. */
#include "digest.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static const char *sha_hex(const char *s, size_t len, char *buf)
{
	uint8_t d[DIGEST_SHA256_LEN];
	digest_sha256(s, len, d);
	digest_hex(d, sizeof(d), buf);
	return buf;
}

int main(void)
{
	char buf[2 * DIGEST_SHA256_LEN + 1];
	tap_plan(9);
	/* FIPS 180-4 examples (one block, two blocks) and the empty message. */
	is_str(sha_hex("abc", 3, buf), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "SHA-256 of \"abc\"");
	is_str(sha_hex("", 0, buf), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "SHA-256 of the empty string");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	is_str(sha_hex(two, strlen(two), buf), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
	       "SHA-256 of the 448-bit message (padding takes a second block)");
	/* 55, 56 and 64 bytes: the edges of the padding. */
	char a[1000001];
	memset(a, 'a', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	is_str(sha_hex(a, 55, buf), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
	       "SHA-256 of 55 'a's");
	is_str(sha_hex(a, 56, buf), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
	       "SHA-256 of 56 'a's");
	is_str(sha_hex(a, 1000000, buf), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
	       "SHA-256 of a million 'a's");
	/* CRC-32C: the check value, RFC 3720 B.4's 32 zero bytes, and continuation. */
	is_int(digest_crc32c(0, "123456789", 9), 0xe3069283, "CRC-32C of \"123456789\"");
	char z[32] = {0};
	is_int(digest_crc32c(0, z, sizeof(z)), 0x8a9136aa, "CRC-32C of 32 zero bytes");
	is_int(digest_crc32c(digest_crc32c(0, "1234", 4), "56789", 5), 0xe3069283,
	       "CRC-32C continued over two pieces equals the whole");
	return tap_done();
}
