/* test_bgsave — a forked child serialises the model: its output is one zstd
 * frame (snapz.h) of, byte for byte, model_snapshot_dump's text of the model as
 * it was at the fork, even while the
 * parent goes on changing the model; a child abandoned before it is collected is
 * killed and reaped; none is left behind. */
#include "bgsave.h"
#include "snapz.h"
#include "model_fixture.h"
#include "tap.h"

#include <errno.h>
#include <raft.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether the packed a[0..alen) unpacks to b[0..blen). */
static bool same(const void *a, size_t alen, const void *b, size_t blen)
{
	char *text = NULL, err[160];
	size_t len = 0;
	if (snapz_unpack(a, alen, &text, &len, err, sizeof(err)) != SNAPZ_OK) {
		tap_diag("unpack: %s", err);
		return false;
	}
	bool eq = len == blen && memcmp(text, b, len) == 0;
	free(text);
	return eq;
}

int main(void)
{
	tap_plan(13);
	struct model m;
	model_init(&m);
	fill_model(&m, 200, 500, "'cpu_required':10,'memory_required_mb':8,'replicas':2");
	char id[32];
	is_int(m.actors.n, 500, "a model of 200 nodes and 500 actors");
	size_t want_len = 0;
	char *want = model_snapshot_dump(&m, 777, &want_len);
	ok(want != NULL && want_len > 1000, "model_snapshot_dump: %zu bytes", want_len);

	struct bgsave b;
	is_int(bgsave_start(&b, &m, 777), 0, "bgsave_start forks a child");
	ok(b.pid > 0 && b.fd >= 0, "... with its pid and memfd");
	/* The parent changes the model while the child serialises its image. */
	for (int i = 500; i < 600; i++) {
		snprintf(id, sizeof(id), "a%03d", i);
		create_planned(&m, NULL, id, "'cpu_required':10,'memory_required_mb':8");
	}
	char err[160] = "";
	is_int(bgsave_collect(&b, err, sizeof(err)), 0, "bgsave_collect %s", err);
	ok(b.mapped && snapz_is_packed(b.base, b.len) && b.len < want_len / 4,
	   "the child's output is a zstd frame: %zu bytes for %zu of text", b.len, want_len);
	ok(same(b.base, b.len, want, want_len),
	   "... of the model as it was at the fork, byte for byte");
	is_int(b.pid, 0, "the child was reaped");
	bgsave_release(&b, b.base);
	is_int(b.fd, -1, "release closes the memfd");

	/* The model now has 600 actors: a new child sees them. */
	size_t len2 = 0;
	char *want2 = model_snapshot_dump(&m, 778, &len2);
	bgsave_start(&b, &m, 778);
	bgsave_collect(&b, err, sizeof(err));
	ok(same(b.base, b.len, want2, len2) && len2 > want_len, "a later child sees the later model");
	bgsave_release(&b, b.base);

	/* Abandoned before collect (raft gave up on the snapshot): killed, reaped. */
	is_int(bgsave_start(&b, &m, 779), 0, "another child");
	pid_t pid = b.pid;
	bgsave_release(&b, NULL);
	ok(b.pid == 0 && kill(pid, 0) != 0 && errno == ESRCH, "released uncollected: killed and reaped");
	ok(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "no child of this process is left");

	raft_free(want);
	raft_free(want2);
	model_release(&m);
	return tap_done();
}
