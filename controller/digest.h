/* digest — the two checksums latticed computes itself: SHA-256 (identifiers
 * derived from names, e.g. a group id) and CRC-32C (records of the projection
 * spool). Pure functions, any thread. */
#ifndef LATTICE_DIGEST_H
#define LATTICE_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_SHA256_LEN 32

/* SHA-256 (FIPS 180-4) of the len bytes at p (borrowed) into out. */
void digest_sha256(const void *p, size_t len, uint8_t out[DIGEST_SHA256_LEN]);
/* Lower-case hex of the n bytes at p into out (2n+1 bytes, NUL-terminated). */
void digest_hex(const uint8_t *p, size_t n, char *out);
/* CRC-32C (Castagnoli, as iSCSI and ext4 use) of the len bytes at p, continuing
 * from crc (0 to start). */
uint32_t digest_crc32c(uint32_t crc, const void *p, size_t len);

#endif
