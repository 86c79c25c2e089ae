/* vactor: the packed actor the read view keeps renders exactly what
 * render_actor_text renders from the model actor (GET /v1/actors/{id} must
 * not depend on where the answer came from). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model.h"
#include "model_fixture.h"
#include "proj.h"
#include "render.h"
#include "tap.h"
#include "vactor.h"

/* Packs the actor, copies the record, renders both; each must equal the model's text. */
static void same_as_model(const struct model_actor *a, const char *name)
{
	char *want = render_actor_text(a);
	struct vactor *r = vactor_pack(a);
	ok(r != NULL, "%s: packed", name);
	if (r == NULL) {
		free(want);
		return;
	}
	struct vactor *c = vactor_copy(r);
	char *got = vactor_text(r), *got_copy = c ? vactor_text(c) : NULL;
	is_str(got, want, "%s: renders as the model actor", name);
	is_str(got_copy, want, "%s: so does a copy (offsets are relative)", name);
	is_str(vactor_id(r), a->spec.id, "%s: id", name);
	ok(r->size < strlen(want), "%s: packed (%u bytes) smaller than its text (%zu)", name, r->size, strlen(want));
	ok(strlen(want) <= vactor_text_max(r), "%s: text (%zu bytes) within vactor_text_max (%zu)", name, strlen(want),
	   vactor_text_max(r));
	free(got);
	free(got_copy);
	free(want);
	free(c);
	free(r);
}

int main(void)
{
	tap_plan(59);
	struct model m;
	model_init(&m);
	base_nodes(&m);
	is_int(apply_j(&m, NULL,
		       "'op':'node_put','flag':0,'node':{'id':'g1','region':'eu','cpu_capacity':4000,"
		       "'memory_mb':8192,'labels':{'tier':'gold','zone':'b'}}"),
	       APPLY_OK, "a labelled node");

	is_int(create_on(&m, NULL, "a1", "'cpu_required':500,'memory_required_mb':256", "'n1'"), APPLY_OK,
	       "a1: created");
	is_int(create_on(&m, NULL, "a2",
			 "'name':'second \\\"one\\\"','cpu_required':100,'memory_required_mb':64,'replicas':3,"
			 "'preferred_region':'eu','constraints':{'tier':'gold','zone':'b'},'priority':7,"
			 "'max_latency_ms':40,'strategy':'round_robin','contracts':['HttpServer','KeyValue']",
			 "'g1','g1','g1'"),
	       APPLY_OK, "a2: created with every field");
	const struct model_actor *a1 = model_actor_get(&m, "a1"), *a2 = model_actor_get(&m, "a2");
	ok(a1 && a2, "both in the model");
	if (!a1 || !a2)
		return tap_done();
	same_as_model(a1, "defaults");
	same_as_model(a2, "every field");

	/* Strings without escapes are copied as they are, by their kept length. */
	struct vactor *r = vactor_pack(a1);
	ok(r && r->plain, "a record whose strings need no escapes is plain");
	free(r);
	r = vactor_pack(a2);
	ok(r && !r->plain, "one with a quote in its name is not (each string escaped)");
	free(r);

	r = vactor_pack(a2);
	ok(r && vactor_on_node(r, "g1"), "on its node");
	ok(r && !vactor_on_node(r, "n1") && !vactor_on_node(r, "g"), "not on others (whole ids)");
	free(r);

	/* An instance not placed anywhere (its node gone, no room elsewhere). */
	struct model_actor *mut = model_actor_get(&m, "a2");
	struct model_node *keep = mut->placements[0].node;
	for (size_t i = 0; i < mut->nplacements; i++)
		mut->placements[i].node = NULL;
	same_as_model(mut, "instances without a node");
	r = vactor_pack(mut);
	ok(r && !vactor_on_node(r, "g1"), "an instance without a node is on none");
	free(r);
	for (size_t i = 0; i < mut->nplacements; i++)
		mut->placements[i].node = keep;

	/* The worst case for vactor_write's bound: every byte of every string
	 * escaped to six (\u0001), or to two (quotes, backslashes). */
	char *saved_name = mut->spec.name, *saved_val = mut->spec.constraints.items[0].value;
	char *saved_key = mut->spec.constraints.items[1].key, *saved_con = mut->spec.contracts.items[0];
	char ctl[400], bs[400];
	memset(ctl, 1, sizeof(ctl) - 1);
	ctl[sizeof(ctl) - 1] = '\0';
	memset(bs, '\\', sizeof(bs) - 1);
	bs[sizeof(bs) - 1] = '\0';
	bs[7] = '"';
	mut->spec.name = ctl;
	mut->spec.constraints.items[0].value = ctl;
	mut->spec.constraints.items[1].key = bs;
	mut->spec.contracts.items[0] = ctl;
	same_as_model(mut, "every string escaped");
	mut->spec.name = saved_name;
	mut->spec.constraints.items[0].value = saved_val;
	mut->spec.constraints.items[1].key = saved_key;
	mut->spec.contracts.items[0] = saved_con;

	/* An escaped id with a name equal to it (kept once, written twice): ids from
	 * the API need no escapes, a snapshot's are only length-checked. */
	char *saved_id = mut->spec.id;
	char ctl_id[129];
	memset(ctl_id, 1, sizeof(ctl_id) - 1);
	ctl_id[sizeof(ctl_id) - 1] = '\0';
	mut->spec.id = ctl_id;
	mut->spec.name = ctl_id;
	same_as_model(mut, "an escaped id as its name");
	/* ... and nothing else to pay for the second copy: no instances,
	 * constraints or contracts, the longest numbers and timestamps. */
	struct model_actor keep_a = *mut;
	mut->nplacements = 0;
	mut->spec.constraints.n = 0;
	mut->spec.contracts.n = 0;
	mut->spec.module = "m";
	mut->spec.preferred_region = "";
	mut->spec.cpu_required = mut->spec.memory_required_mb = mut->spec.max_latency_ms = INT32_MIN;
	mut->generation = UINT64_MAX;
	mut->created_ms = mut->updated_ms = INT64_MAX;
	same_as_model(mut, "an escaped id as its name, the longest numbers");
	*mut = keep_a;
	mut->spec.id = saved_id;
	mut->spec.name = saved_name;

	/* A string longer than its two-byte length field holds (0xffff). */
	char *saved_module = mut->spec.module;
	char *big = malloc(70001);
	if (big) {
		memset(big, 'm', 70000);
		big[70000] = '\0';
		mut->spec.module = big;
	}
	same_as_model(mut, "a module of 70,000 bytes");
	mut->spec.module = saved_module;
	free(big);

	/* Scaling and a later update change generation and updated_at. */
	is_int(update_on(&m, NULL, "a1", "'replicas':2", "'n3'"), APPLY_OK, "a1: scaled to 2");
	same_as_model(model_actor_get(&m, "a1"), "after scaling");

	/* The name defaults to the id: kept once. */
	r = vactor_pack(a1);
	ok(r && r->name == r->id, "a default name shares the id's bytes");
	free(r);

	model_release(&m);
	return tap_done();
}
