/* test_model_cmd — the command outbox in the model (model_cmd.c): a newer
 * security_policy for a node supersedes its older ones not published yet
 * (entry format 4), its publication, ack or failure the older ones on their
 * way, and entries of format 3 replay as they did. */
#include <jansson.h>
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model.h"
#include "model_fixture.h"
#include "model_int.h"
#include "proj.h"
#include "tap.h"

/* Applies a format-v entry written by a leader of term 1 at index b's. */
static int apply_v(struct model *m, struct proj_batch *b, int v, const char *body)
{
	clock_ms += 1000;
	char *text = dq(fmt("{'v':%d,'term':1,'at':%lld,'who':'test',%s}", v, (long long)clock_ms, body));
	int rc = apply_text(m, b, text);
	free(text);
	return rc;
}

/* A PUT of policy p1 over region eu with a new cap (so each one changes it). */
static int policy_put(struct model *m, struct proj_batch **b, int v, int create, int cap)
{
	char *body = fmt("'op':'policy_put','flag':%d,'policy':{'policy_id':'p1','max_actor_memory_mb':%d,"
			 "'selector':{'regions':['eu']}}",
			 create, cap);
	int rc = apply_v(m, batch(b), v, body);
	free(body);
	return rc;
}

static int update(struct model *m, struct proj_batch **b, int v, const char *id, int status, int attempts,
		  const char *error, long long applied)
{
	char *body = fmt("'op':'command_update','updates':[{'command_id':'%s','status':%d,'attempts':%d%s%s%s,"
			 "'applied_version':%lld}]",
			 id, status, attempts, error ? ",'error':'" : "", error ? error : "", error ? "'" : "", applied);
	int rc = apply_v(m, batch(b), v, body);
	free(body);
	return rc;
}

/* The id of node's newest open security_policy ("" when none), into buf. */
static const char *newest(const struct model *m, const char *node, char *buf, size_t len)
{
	size_t n;
	struct model_command *const *open = model_cmd_policy_open(m, node, &n);
	snprintf(buf, len, "%s", n ? open[n - 1]->id : "");
	return buf;
}

static size_t nopen(const struct model *m, const char *node)
{
	size_t n;
	model_cmd_policy_open(m, node, &n);
	return n;
}

static enum cmd_status status_of(const struct model *m, const char *id)
{
	const struct model_command *c = model_command_get(m, id);
	return c ? c->status : CMD_STATUSES;
}

static void setup(struct model *m, struct proj_batch **b)
{
	model_init(m);
	put_node(m, batch(b), 0, "n1", "eu", 4000, 8192, 0, 0, 0);
	put_node(m, batch(b), 0, "n2", "eu", 4000, 8192, 0, 0, 0);
}

static void test_pending_superseded(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	char first[64], second[64], other[64];
	setup(&m, &b);
	is_int(policy_put(&m, &b, 4, 1, 512), APPLY_OK, "v4: policy created over eu");
	is_int((int)nopen(&m, "n1"), 1, "one security_policy open for n1");
	is_int((int)nopen(&m, "n2"), 1, "one security_policy open for n2");
	newest(&m, "n1", first, sizeof(first));
	newest(&m, "n2", other, sizeof(other));
	is_int(status_of(&m, first), CMD_PENDING, "it is pending");

	is_int(policy_put(&m, &b, 4, 0, 640), APPLY_OK, "v4: policy changed before anything was published");
	newest(&m, "n1", second, sizeof(second));
	ok(strcmp(first, second) != 0, "a new command for n1 (%s after %s)", second, first);
	is_int((int)nopen(&m, "n1"), 1, "still one open for n1: the pending one is superseded");
	is_int(status_of(&m, first), CMD_SUPERSEDED, "the older one's status: superseded");
	const struct model_command *c = model_command_get(&m, first);
	ok(c && c->error && strstr(c->error, second) != NULL, "its error names the newer one: %s",
	   c && c->error ? c->error : "(none)");
	ok(c && c->acked_ms == clock_ms, "finished at the entry's time");
	is_str(model_cmd_status_name(CMD_SUPERSEDED), "superseded", "status name");
	is_int(status_of(&m, other), CMD_SUPERSEDED, "n2's older one too");
	ok(m.cmd_open.n == 2, "open commands: one per node (%zu)", m.cmd_open.n);
	proj_batch_free(b);
	model_release(&m);
}

static void test_published_waits_for_ack(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	char a[64], bb[64], cc[64];
	setup(&m, &b);
	policy_put(&m, &b, 4, 1, 512);
	newest(&m, "n1", a, sizeof(a));
	is_int(update(&m, &b, 4, a, CMD_PUBLISHED, 1, NULL, 0), APPLY_OK, "first published");
	policy_put(&m, &b, 4, 0, 640);
	newest(&m, "n1", bb, sizeof(bb));
	is_int(status_of(&m, a), CMD_PUBLISHED, "a published one is not superseded by a newer one alone");
	is_int((int)nopen(&m, "n1"), 2, "two open for n1, oldest first");
	size_t n;
	struct model_command *const *open = model_cmd_policy_open(&m, "n1", &n);
	ok(n == 2 && strcmp(open[0]->id, a) == 0 && strcmp(open[1]->id, bb) == 0, "order: %s, %s", a, bb);
	policy_put(&m, &b, 4, 0, 768);
	newest(&m, "n1", cc, sizeof(cc));
	is_int(status_of(&m, bb), CMD_SUPERSEDED, "the pending middle one is superseded by the third");
	is_int((int)nopen(&m, "n1"), 2, "open for n1: the published first and the third");

	const struct model_command *c3 = model_command_get(&m, cc);
	long long target = c3 ? (long long)c3->generation : 0;
	is_int(update(&m, &b, 4, cc, CMD_ACKED, 1, NULL, target), APPLY_OK, "the newest acked");
	is_int(status_of(&m, cc), CMD_ACKED, "acked");
	is_int(status_of(&m, a), CMD_SUPERSEDED, "its ack supersedes the older published one");
	is_int((int)nopen(&m, "n1"), 0, "nothing open for n1");
	const struct model_node *n1 = model_node_get(&m, "n1");
	ok(n1 && n1->policy_version == target && n1->policy_target == target, "n1 on its target policy (%lld)",
	   target);
	is_int(update(&m, &b, 4, a, CMD_ACKED, 2, NULL, 1), APPLY_OK, "a late ack of the superseded one");
	is_int(status_of(&m, a), CMD_SUPERSEDED, "changes nothing");
	ok(n1 && n1->policy_version == target, "n1's policy version unchanged");
	proj_batch_free(b);
	model_release(&m);
}

/* A newer one published: the node gets it after the older ones, which are moot. */
static void test_publication_supersedes(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	char a[64], bb[64];
	setup(&m, &b);
	policy_put(&m, &b, 4, 1, 512);
	newest(&m, "n1", a, sizeof(a));
	update(&m, &b, 4, a, CMD_PUBLISHED, 1, NULL, 0);
	policy_put(&m, &b, 4, 0, 640);
	newest(&m, "n1", bb, sizeof(bb));
	is_int(update(&m, &b, 4, bb, CMD_PUBLISHED, 1, NULL, 0), APPLY_OK, "the newer one published");
	is_int(status_of(&m, a), CMD_SUPERSEDED, "the older published one: superseded");
	is_int((int)nopen(&m, "n1"), 1, "one open for n1: the newer one");
	is_int(status_of(&m, bb), CMD_PUBLISHED, "which stays published until acked");
	proj_batch_free(b);
	model_release(&m);
}

static void test_failures(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	char a[64], bb[64];
	setup(&m, &b);
	policy_put(&m, &b, 4, 1, 512);
	newest(&m, "n1", a, sizeof(a));
	update(&m, &b, 4, a, CMD_PUBLISHED, 1, NULL, 0);
	policy_put(&m, &b, 4, 0, 640);
	newest(&m, "n1", bb, sizeof(bb));
	is_int(update(&m, &b, 4, a, CMD_FAILED, 1, "stale command: term 1 generation 3 is older", 0), APPLY_OK,
	       "the older one refused as stale");
	is_int(status_of(&m, a), CMD_SUPERSEDED, "a failure with a newer one open: superseded, not failed");
	is_int(update(&m, &b, 4, bb, CMD_FAILED, 8, "not acked after 8 attempts", 0), APPLY_OK,
	       "the newest given up");
	is_int(status_of(&m, bb), CMD_FAILED, "the newest fails (nothing newer decides for it)");
	is_int((int)nopen(&m, "n1"), 0, "nothing open for n1");
	proj_batch_free(b);
	model_release(&m);
}

/* An older log replays as it did: no supersession. */
static void test_format3(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	char a[64], bb[64];
	setup(&m, &b);
	policy_put(&m, &b, 3, 1, 512);
	newest(&m, "n1", a, sizeof(a));
	policy_put(&m, &b, 3, 0, 640);
	newest(&m, "n1", bb, sizeof(bb));
	is_int(status_of(&m, a), CMD_PENDING, "v3: the older one stays pending");
	is_int((int)nopen(&m, "n1"), 2, "v3: two open for n1");
	update(&m, &b, 3, bb, CMD_ACKED, 1, NULL, 5);
	is_int(status_of(&m, a), CMD_PENDING, "v3: an ack of the newer one leaves it open");
	is_int((int)nopen(&m, "n1"), 1, "v3: one open for n1");
	proj_batch_free(b);
	model_release(&m);
}

/* A snapshot keeps superseded commands finished and rebuilds each node's open
 * set, in order. */
static void test_snapshot(void)
{
	struct model m, r;
	struct proj_batch *b = NULL;
	char a[64], cc[64], sup[64];
	setup(&m, &b);
	policy_put(&m, &b, 4, 1, 512);
	newest(&m, "n1", a, sizeof(a));
	update(&m, &b, 4, a, CMD_PUBLISHED, 1, NULL, 0);
	policy_put(&m, &b, 4, 0, 640);
	newest(&m, "n1", sup, sizeof(sup));
	policy_put(&m, &b, 4, 0, 768);
	newest(&m, "n1", cc, sizeof(cc));
	size_t len;
	char *text = model_snapshot_dump(&m, 99, &len);
	model_init(&r);
	char err[256] = "";
	is_int(model_restore_text(&r, text, len, NULL, err, sizeof(err)), MODEL_SNAP_OK, "restored %s", err);
	is_int(status_of(&r, sup), CMD_SUPERSEDED, "a superseded command stays superseded");
	size_t n;
	struct model_command *const *open = model_cmd_policy_open(&r, "n1", &n);
	ok(n == 2 && strcmp(open[0]->id, a) == 0 && strcmp(open[1]->id, cc) == 0, "n1's open set rebuilt in order");
	is_int(update(&r, &b, 4, cc, CMD_ACKED, 1, NULL, 9), APPLY_OK, "ack after the restore");
	is_int(status_of(&r, a), CMD_SUPERSEDED, "supersedes the older one there too");
	raft_free(text);
	proj_batch_free(b);
	model_release(&m);
	model_release(&r);
}

/* An actor_start in its usual form is kept without its payload text
 * (model_cmd_pack): the text it gives, projects and snapshots is what it
 * was; any other payload is kept as it is. */
static void test_compact_start(void)
{
	struct model m, r;
	struct proj_batch *b = NULL;
	setup(&m, &b);
	is_int(apply_v(&m, batch(&b), 4,
		       "'op':'actor_create','actor':{'id':'a1'," MODULE
		       ",'cpu_required':250,'memory_required_mb':96},'placements':['n1']"),
	       APPLY_OK, "an actor created on n1 at term 1");
	const char *want = "{\"actor_id\":\"a1\",\"instance\":0,\"module\":\"ghcr.io/lattice/echo:1\","
			   "\"cpu_required\":250,\"memory_required_mb\":96,\"config\":{},\"snapshot\":null}";
	const struct model_command *c = m.cmd_open.tail;
	ok(c && c->type == CMD_ACTOR_START && c->payload == NULL && c->module &&
		   strcmp(c->module, "ghcr.io/lattice/echo:1") == 0,
	   "its actor_start keeps no payload text, only the module and resources");
	char *text = c ? model_cmd_payload(c) : NULL;
	is_str(text, want, "... and gives the payload text in its usual form");
	free(text);
	const struct proj_change *pc = find_kind(b, PROJ_COMMAND_UPSERT);
	is_str(pc && pc->nparams > 8 ? pc->params[8] : NULL, want, "... which is what PostgreSQL gets");

	size_t len;
	char *snap = model_snapshot_dump(&m, 99, &len);
	model_init(&r);
	char err[256] = "";
	is_int(model_restore_text(&r, snap, len, NULL, err, sizeof(err)), MODEL_SNAP_OK, "restored %s", err);
	const struct model_command *rc = c ? model_command_get(&r, c->id) : NULL;
	text = rc ? model_cmd_payload(rc) : NULL;
	ok(rc && rc->payload == NULL && text && strcmp(text, want) == 0,
	   "a snapshot writes the text and a restore packs it again");
	free(text);
	raft_free(snap);

	/* Not the usual form: kept as text, byte for byte. */
	const char *odd[] = {
		"{\"actor_id\":\"a1\",\"instance\":0,\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1,"
		"\"config\":{\"k\":\"v\"},\"snapshot\":null}",
		"{\"instance\":0,\"actor_id\":\"a1\",\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1,"
		"\"config\":{},\"snapshot\":null}",
		"{\"actor_id\":\"a2\",\"instance\":0,\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1,"
		"\"config\":{},\"snapshot\":null}",
		"{\"actor_id\":\"a1\",\"instance\":0,\"module\":\"m\",\"cpu_required\":1,\"memory_required_mb\":1,"
		"\"config\":{},\"snapshot\":{\"state_version\":3}}",
	};
	int kept = 0;
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		struct model_command t = {.id = "c9-0", .type = CMD_ACTOR_START, .node = "n1", .actor_id = "a1",
					  .payload = (char *)odd[i]};
		struct model_command *p = model_cmd_pack(&t);
		char *pt = p ? model_cmd_payload(p) : NULL;
		kept += p && p->payload && p->module == NULL && pt && strcmp(pt, odd[i]) == 0;
		free(pt);
		model_cmd_free(p);
	}
	is_int(kept, 4, "other config, key order, actor or a snapshot: the payload kept as text");

	struct model_command *mc = model_command_get(&r, c ? c->id : "");
	if (mc)
		model_cmd_want_snapshot(&r, mc, 7, NULL);
	text = mc ? model_cmd_payload(mc) : NULL;
	ok(mc && mc->payload_own && text && contains(text, "\"snapshot\":{\"state_version\":7}") &&
		   contains(text, "\"cpu_required\":250"),
	   "a start that waits for a snapshot gets a payload text of its own");
	free(text);
	proj_batch_free(b);
	model_release(&m);
	model_release(&r);
}

int main(void)
{
	tap_plan(53);
	test_compact_start();
	test_pending_superseded();
	test_published_waits_for_ack();
	test_publication_supersedes();
	test_failures();
	test_format3();
	test_snapshot();
	return tap_done();
}
