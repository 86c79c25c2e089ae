/* fuzz_spec — libFuzzer target: REST request bodies (spec_parse_body and every
 * spec_*_from_json decoder), as the API threads read them.
 *
 * Properties: no body crashes or leaks; an object a decoder accepts encodes
 * (spec_*_to_json) to JSON the same decoder accepts again, with the same
 * encoding (what the API stores is what it accepted). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const char *kind, json_t *first, json_t *second)
{
	if (first == NULL || second == NULL || !json_equal(first, second)) {
		char *a = first ? json_dumps(first, JSON_SORT_KEYS) : NULL, *b = second ? json_dumps(second, JSON_SORT_KEYS) : NULL;
		fprintf(stderr, "fuzz_spec: %s does not survive encode/decode:\n%s\n%s\n", kind, a ? a : "(null)",
			b ? b : "(null)");
		abort();
	}
	json_decref(first);
	json_decref(second);
}

static void refused_again(const char *kind, const struct spec_err *err)
{
	fprintf(stderr, "fuzz_spec: %s: its own encoding is refused: %s %s\n", kind, err->code, err->message);
	abort();
}

/* ROUND(kind, type): decode j as kind; when accepted, encode, decode again, compare. */
#define ROUND(kind, type)                                                           \
	do {                                                                        \
		struct type a, b;                                                   \
		struct spec_err e_;                                                 \
		if (spec_##kind##_from_json(j, &a, &e_) == 0) {                     \
			json_t *t = spec_##kind##_to_json(&a);                      \
			if (t == NULL || spec_##kind##_from_json(t, &b, &e_) != 0)  \
				refused_again(#kind, &e_);                          \
			same(#kind, t, spec_##kind##_to_json(&b));                  \
			spec_##kind##_free(&a);                                     \
			spec_##kind##_free(&b);                                     \
		}                                                                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = NULL;
	struct spec_err err;
	if (spec_parse_body((const char *)data, size, &j, &err) != 0)
		return 0;
	ROUND(node, node_spec);
	ROUND(actor, actor_spec);
	ROUND(provider, provider_spec);
	ROUND(link, link_spec);
	ROUND(policy, policy_spec);
	struct actor_patch p, q;
	if (spec_actor_patch_from_json(j, &p, &err) == 0) {
		json_t *t = spec_actor_patch_to_json(&p);
		if (t == NULL || spec_actor_patch_from_json(t, &q, &err) != 0)
			refused_again("actor_patch", &err);
		same("actor_patch", t, spec_actor_patch_to_json(&q));
	}
	json_decref(j);
	return 0;
}
