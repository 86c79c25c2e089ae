/* fuzz_snapshot — libFuzzer target: Raft snapshots (model_restore_text), as a
 * replica reads them at start-up or from the leader.
 *
 * Properties: restoring any bytes neither crashes nor leaks, and a refusal
 * leaves the model empty; a restored model is consistent (accounting, the
 * scheduler's index, policy coverage, links: model_fixture's invariants), and
 * its own snapshot restores again to the same model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "../unit/model_fixture.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m;
	char err[512], why[512];
	uint64_t index = 0;
	model_init(&m);
	int rc = model_restore_text(&m, data, size, &index, err, sizeof(err));
	if (rc != MODEL_SNAP_OK) {
		if (m.nodes.n || m.actors.n || m.providers.n || m.links.n || m.policies.n) {
			fprintf(stderr, "fuzz_snapshot: a refused snapshot left objects in the model: %s\n", err);
			abort();
		}
		model_release(&m);
		return 0;
	}
	if (!invariants(&m, why, sizeof(why))) {
		fprintf(stderr, "fuzz_snapshot: a restored model is inconsistent: %s\n", why);
		abort();
	}
	size_t len = 0;
	char *text = model_snapshot_dump(&m, index, &len);
	if (text == NULL) {
		fprintf(stderr, "fuzz_snapshot: a restored model cannot be snapshotted\n");
		abort();
	}
	struct model again;
	uint64_t index2 = 0;
	model_init(&again);
	if (model_restore_text(&again, text, len, &index2, err, sizeof(err)) != MODEL_SNAP_OK || index2 != index) {
		fprintf(stderr, "fuzz_snapshot: a restored model's own snapshot does not restore: %s\n%.*s\n", err,
			(int)len, text);
		abort();
	}
	char *d1 = dump(&m), *d2 = dump(&again);
	if (strcmp(d1, d2) != 0) {
		fprintf(stderr, "fuzz_snapshot: restored twice, the models differ:\n%s\n%s\n", d1, d2);
		abort();
	}
	free(d1);
	free(d2);
	raft_free(text);
	model_release(&again);
	model_release(&m);
	return 0;
}
