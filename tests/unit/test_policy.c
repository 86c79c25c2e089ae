/* test_policy — selectors, combination of covering policies, refresh order. */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "policy.h"
#include "tap.h"

/* "k=v,k2=v2" (keys given sorted) -> kvlist owning its strings. */
static struct kvlist kv(const char *s)
{
	struct kvlist l = {0};
	char *buf = strdup(s), *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		*eq = '\0';
		l.items = realloc(l.items, (l.n + 1) * sizeof(*l.items));
		l.items[l.n].key = strdup(tok);
		l.items[l.n].value = strdup(eq + 1);
		l.n++;
	}
	free(buf);
	return l;
}

/* "a,b" (given sorted) -> strlist owning its strings. */
static struct strlist sl(const char *s)
{
	struct strlist l = {0};
	char *buf = strdup(s), *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		l.items = realloc(l.items, (l.n + 1) * sizeof(*l.items));
		l.items[l.n++] = strdup(tok);
	}
	free(buf);
	return l;
}

static struct model_policy *add_policy(struct model *m, const char *id, const char *allowed,
				       const char *denied, int64_t cap, const char *regions,
				       const char *labels)
{
	struct model_policy *p = calloc(1, sizeof(*p));
	p->spec.policy_id = strdup(id);
	p->spec.allowed_contracts = sl(allowed);
	p->spec.denied_contracts = sl(denied);
	p->spec.max_actor_memory_mb = cap;
	p->spec.sel_regions = sl(regions);
	p->spec.sel_labels = kv(labels);
	p->version = 1;
	hmap_put(&m->policies, p->spec.policy_id, p);
	return p;
}

static struct model_node *add_node(struct model *m, const char *id, const char *region,
				   const char *labels)
{
	struct model_node *n = calloc(1, sizeof(*n));
	n->spec.id = strdup(id);
	n->spec.region = strdup(region);
	n->spec.labels = kv(labels);
	n->spec.cpu_capacity = 1000;
	n->spec.memory_mb = 1000;
	n->cpu_measured = n->memory_measured_mb = -1;
	hmap_put(&m->nodes, n->spec.id, n);
	return n;
}

static void refresh_all(struct model *m)
{
	size_t pos = 0;
	struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos)))
		policy_refresh_node(m, n);
}

static void test_covers(void)
{
	struct policy_spec p = {0};
	struct kvlist labels = kv("tier=edge,zone=a");
	struct kvlist none = {0};

	ok(policy_covers(&p, "eu-1", &labels), "empty selector covers a labelled node");
	ok(policy_covers(&p, "eu-1", &none), "empty selector covers an unlabelled node");
	p.sel_regions = sl("eu-1,us-1");
	ok(policy_covers(&p, "us-1", &labels), "listed region covered");
	ok(!policy_covers(&p, "ap-1", &labels), "unlisted region not covered");
	p.sel_labels = kv("zone=a");
	ok(policy_covers(&p, "eu-1", &labels), "region and matching label covered");
	ok(!policy_covers(&p, "eu-1", &none), "missing label not covered");
	kvlist_free(&p.sel_labels);
	p.sel_labels = kv("tier=edge,zone=b");
	ok(!policy_covers(&p, "eu-1", &labels), "every label pair must match");
	strlist_free(&p.sel_regions);
	kvlist_free(&p.sel_labels);
	p.sel_labels = kv("tier=edge,zone=a");
	ok(policy_covers(&p, "anywhere", &labels), "labels only: any region");
	spec_policy_free(&p);
	kvlist_free(&labels);
}

static void test_combination(void)
{
	struct model m;
	model_init(&m);
	struct model_node *bare = add_node(&m, "bare", "ap-1", "");
	struct model_node *eu = add_node(&m, "eu", "eu-1", "zone=a");
	struct model_node *eub = add_node(&m, "eub", "eu-1", "zone=b");

	/* No policy at all: nothing restricted. */
	refresh_all(&m);
	ok(bare->npolicies == 0 && bare->policies == NULL, "no policies: none cover");
	ok(policy_allows_contract(bare, "wasmcloud:keyvalue"), "uncovered node allows any contract");
	is_int(policy_memory_cap(bare), 0, "uncovered node has no memory cap");

	add_policy(&m, "p-eu", "wasmcloud:httpserver,wasmcloud:keyvalue", "", 512, "eu-1", "");
	add_policy(&m, "p-zone-a", "wasmcloud:keyvalue,wasmcloud:messaging", "", 0, "", "zone=a");
	add_policy(&m, "p-deny", "", "wasmcloud:blobstore", 64, "eu-1", "zone=b");
	add_policy(&m, "a-global", "", "", 0, "", "");
	refresh_all(&m);

	is_int(bare->npolicies, 1, "bare node: only the global policy covers it");
	ok(policy_allows_contract(bare, "wasmcloud:blobstore"), "empty allowed list allows anything");

	is_int(eu->npolicies, 3, "eu node covered by three policies");
	ok(eu->npolicies == 3 && strcmp(eu->policies[0]->spec.policy_id, "a-global") == 0 &&
		   strcmp(eu->policies[1]->spec.policy_id, "p-eu") == 0 &&
		   strcmp(eu->policies[2]->spec.policy_id, "p-zone-a") == 0,
	   "covering list sorted by policy id");
	ok(policy_allows_contract(eu, "wasmcloud:keyvalue"), "allowed by every non-empty list");
	ok(!policy_allows_contract(eu, "wasmcloud:httpserver"), "missing from one allowed list: denied");
	ok(!policy_allows_contract(eu, "wasmcloud:messaging"), "missing from the other: denied");
	is_int(policy_memory_cap(eu), 512, "only cap");

	is_int(eub->npolicies, 3, "eub covered by global, p-deny, p-eu");
	ok(!policy_allows_contract(eub, "wasmcloud:blobstore"), "denied list wins");
	ok(policy_allows_contract(eub, "wasmcloud:httpserver"), "allowed by p-eu, not denied");
	is_int(policy_memory_cap(eub), 64, "smallest non-zero cap wins");

	/* A denial in a policy with an allow list naming the same contract still denies. */
	add_policy(&m, "p-both", "wasmcloud:keyvalue", "wasmcloud:keyvalue", 0, "ap-1", "");
	refresh_all(&m);
	ok(!policy_allows_contract(bare, "wasmcloud:keyvalue"), "denied even when also allowed");
	ok(!policy_allows_contract(bare, "wasmcloud:httpserver"), "not in the non-empty allow list");

	model_release(&m);
}

int main(void)
{
	tap_plan(8 + 17);
	test_covers();
	test_combination();
	return tap_done();
}
