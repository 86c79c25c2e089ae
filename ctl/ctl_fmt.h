/* ctl_fmt — how latticectl shows values in its tables: ages ("5m12s"),
 * durations, millicores and MiB, and JSON values as one short cell. Pure. */
#ifndef LATTICE_CTL_FMT_H
#define LATTICE_CTL_FMT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Parses the API's RFC 3339 UTC time ("2026-01-31T12:00:00.000Z"; fraction
 * and 'Z' or "+00:00" accepted). 0 with *t set, or -1. */
int ctl_parse_time(const char *s, time_t *t);

/* Seconds as kubectl shows an age: "45s", "3m12s", "25m", "2h5m", "30h",
 * "3d4h", "90d", "3y". A negative span (clock skew) shows "0s". */
void ctl_fmt_age_secs(int64_t secs, char *out, size_t n);
/* The age of an RFC 3339 time at now; "<none>" for NULL/null/empty, "?" when
 * it does not parse. */
void ctl_fmt_age(const char *rfc3339, time_t now, char *out, size_t n);
/* Milliseconds: "850ms", "5s", "1.5s", "2m3s" (then as an age). */
void ctl_fmt_ms(int64_t ms, char *out, size_t n);
/* Millicores: "500m"; MiB: "128Mi", or "8Gi" for whole GiB. */
void ctl_fmt_cpu(int64_t m, char *out, size_t n);
void ctl_fmt_mem(int64_t mb, char *out, size_t n);

/* One JSON value as a cell: a string as it is, a number, true/false, null as
 * "" (the table shows <none>), an array of scalars "a,b", an object
 * "k=v,k2=v2" in key order; anything deeper as compact JSON. malloc'd. */
char *ctl_fmt_json(const json_t *v);
/* The string member key of obj, or "" when absent or not a string. */
const char *ctl_jstr(const json_t *obj, const char *key);
/* The integer member key of obj, or dflt. */
int64_t ctl_jint(const json_t *obj, const char *key, int64_t dflt);

#endif
