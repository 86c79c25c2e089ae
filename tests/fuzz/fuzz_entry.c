/* fuzz_entry — libFuzzer target: Raft log entries (entry_decode), as a replica
 * reads them from its log or from the leader.
 *
 * Properties: decoding any bytes neither crashes nor leaks; an entry that
 * decodes re-encodes (entry_encode) to text that decodes again; applying it to a
 * small model (three nodes, an actor, a policy, a provider and a link) neither
 * crashes nor leaks, and a refused entry leaves the model as it was. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "entry.h"
#include "model.h"
#include "proj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const base_log[] = {
	"{\"v\":1,\"op\":\"node_put\",\"at\":1000,\"who\":\"fuzz\",\"node\":{\"id\":\"n1\",\"region\":\"eu\","
	"\"labels\":{\"tier\":\"edge\"},\"cpu_capacity\":4000,\"memory_mb\":8192}}",
	"{\"v\":1,\"op\":\"node_put\",\"at\":1001,\"who\":\"fuzz\",\"node\":{\"id\":\"n2\",\"region\":\"eu\","
	"\"cpu_capacity\":4000,\"memory_mb\":8192,\"cpu_used\":500}}",
	"{\"v\":1,\"op\":\"node_put\",\"at\":1002,\"who\":\"fuzz\",\"node\":{\"id\":\"n3\",\"region\":\"us\"}}",
	"{\"v\":1,\"op\":\"policy_put\",\"at\":1003,\"who\":\"fuzz\",\"flag\":1,\"policy\":{\"policy_id\":\"pol1\","
	"\"denied_contracts\":[\"wasmcloud:messaging\"],\"selector\":{\"labels\":{\"tier\":\"edge\"}}}}",
	"{\"v\":1,\"op\":\"actor_create\",\"at\":1004,\"who\":\"fuzz\",\"actor\":{\"id\":\"a1\",\"module\":\"m:1\","
	"\"cpu_required\":500,\"memory_required_mb\":512,\"replicas\":2},\"placements\":[\"n1\",\"n2\"]}",
	"{\"v\":1,\"op\":\"provider_create\",\"at\":1005,\"who\":\"fuzz\",\"provider\":{\"id\":\"p1\","
	"\"contract_id\":\"wasmcloud:keyvalue\",\"image\":\"i:1\",\"nodes\":[\"n1\"]}}",
	"{\"v\":1,\"op\":\"link_create\",\"at\":1006,\"who\":\"fuzz\",\"link\":{\"id\":\"l1\",\"actor_id\":\"a1\","
	"\"provider_id\":\"p1\",\"contract_id\":\"wasmcloud:keyvalue\"}}",
};

static void base_model(struct model *m)
{
	model_init(m);
	for (size_t i = 0; i < sizeof(base_log) / sizeof(base_log[0]); i++) {
		struct entry e;
		struct apply_result res;
		char err[256];
		if (entry_decode(base_log[i], strlen(base_log[i]), &e, err, sizeof(err)) != 0) {
			fprintf(stderr, "fuzz_entry: base entry %zu does not decode: %s\n", i, err);
			abort();
		}
		model_apply(m, &e, i + 1, NULL, &res);
		entry_release(&e);
		if (res.code != APPLY_OK) {
			fprintf(stderr, "fuzz_entry: base entry %zu refused: %s\n", i, res.message);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct entry e;
	char err[256];
	if (entry_decode(data, size, &e, err, sizeof(err)) != 0)
		return 0;
	void *buf = NULL;
	size_t len = 0;
	if (entry_encode(&e, &buf, &len) == 0) {
		struct entry again;
		if (entry_decode(buf, len, &again, err, sizeof(err)) != 0) {
			fprintf(stderr, "fuzz_entry: a decoded entry re-encodes to text that does not decode: %s\n%.*s\n",
				err, (int)len, (const char *)buf);
			abort();
		}
		entry_release(&again);
		raft_free(buf);
	}
	struct model m;
	base_model(&m);
	json_t *before = model_snapshot(&m);
	struct proj_batch *b = proj_batch_new(100);
	struct apply_result res;
	model_apply(&m, &e, 100, b, &res);
	if (res.code != APPLY_OK) {
		json_t *after = model_snapshot(&m);
		if (!json_equal(before, after) || b->n != 0) {
			fprintf(stderr, "fuzz_entry: a refused entry (%d: %s) changed the model or wrote rows\n",
				(int)res.code, res.message);
			abort();
		}
		json_decref(after);
	}
	json_decref(before);
	proj_batch_free(b);
	entry_release(&e);
	model_release(&m);
	return 0;
}
