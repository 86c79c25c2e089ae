/* check_state — the checks of docs/chaos.md that read the final state (and
 * take their evidence from the history): replicas_differ, failover,
 * stuck_command, double_apply, policy_behind, agent_state. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_int.h"
#include "collect.h"

/* ---- replicas_differ ------------------------------------------------------ */

/* A row's primary key: a string and, for placements and policies, an integer. */
static void row_pk(const char *table, json_t *row, const char **s, json_int_t *n)
{
	*n = 0;
	if (strcmp(table, "placements") == 0) {
		*s = jstr(row, "actor_id");
		jint(row, "instance", n);
	} else if (strcmp(table, "policies") == 0) {
		*s = jstr(row, "policy_id");
		jint(row, "version", n);
	} else if (strcmp(table, "commands") == 0)
		*s = jstr(row, "command_id");
	else
		*s = jstr(row, "id");
	if (!*s)
		*s = "";
}

static int pk_cmp(const char *t, json_t *a, json_t *b)
{
	const char *sa, *sb;
	json_int_t na, nb;
	row_pk(t, a, &sa, &na);
	row_pk(t, b, &sb, &nb);
	int r = strcmp(sa, sb);
	return r ? r : (na > nb) - (na < nb);
}

/* Finds the first row (tables in COLLECT_TABLES order, rows in key order) that
 * a's and b's tables do not share; *ra / *rb are the two rows (one NULL when
 * only the other has it). Returns the table, or NULL when they are equal. */
static const char *first_diff(json_t *ta, json_t *tb, json_t **ra, json_t **rb)
{
	static const char *const names[COLLECT_NTABLES] = COLLECT_TABLES;
	for (int t = 0; t < COLLECT_NTABLES; t++) {
		const char *name = names[t];
		json_t *a = jtable(ta, name), *b = jtable(tb, name);
		size_t i = 0, j = 0, na = json_array_size(a), nb = json_array_size(b);
		while (i < na || j < nb) {
			json_t *x = i < na ? json_array_get(a, i) : NULL, *y = j < nb ? json_array_get(b, j) : NULL;
			int r = !x ? 1 : !y ? -1 : pk_cmp(name, x, y);
			if (r == 0 && json_equal(x, y)) {
				i++, j++;
				continue;
			}
			*ra = r <= 0 ? x : NULL;
			*rb = r >= 0 ? y : NULL;
			return name;
		}
	}
	return NULL;
}

void check_replicas_differ(struct ctx *c)
{
	size_t checked = 0;
	for (size_t r = 1; r < c->live.n; r++) {
		json_t *el = c->live.v[r], *ref_el = c->live.v[0];
		const char *da = jstr(ref_el, "digest"), *db = jstr(el, "digest");
		json_int_t rep = 0, pa = -1, pb = -1;
		jint(el, "replica", &rep);
		checked++;
		if (da && db && strcmp(da, db) == 0)
			continue;
		json_t *ra = NULL, *rb = NULL;
		const char *table = first_diff(c->ref, json_object_get(el, "tables"), &ra, &rb);
		if (!table && da && db) {
			table = "";
		} else if (!table)
			continue;
		const char *key = "";
		json_int_t kn = 0;
		char what[512];
		if (!*table) {
			/* Rows final.json does not keep (finished commands) differ:
			 * the per-table digests say where. */
			static const char *const names[COLLECT_NTABLES] = COLLECT_TABLES;
			char tabs[128] = "";
			json_t *xa = json_object_get(ref_el, "digests"), *xb = json_object_get(el, "digests");
			for (int t = 0; t < COLLECT_NTABLES; t++) {
				const char *ha = jstr(xa, names[t]), *hb = jstr(xb, names[t]);
				if (ha && hb && strcmp(ha, hb) != 0) {
					size_t l = strlen(tabs);
					snprintf(tabs + l, sizeof(tabs) - l, "%s%s", l ? ", " : "", names[t]);
				}
			}
			if (*tabs)
				snprintf(what, sizeof(what),
					 "their digests differ (%s, %s) in %s, in rows final.json does not keep "
					 "(finished commands)",
					 da, db, tabs);
			else
				snprintf(what, sizeof(what), "their digests differ (%s, %s) but their rows do not", da, db);
		} else {
			row_pk(table, ra ? ra : rb, &key, &kn);
			char name[300];
			if (strcmp(table, "placements") == 0 || strcmp(table, "policies") == 0)
				snprintf(name, sizeof(name), "%s %s/%lld", table, key, (long long)kn);
			else
				snprintf(name, sizeof(name), "%s %s", table, key);
			if (!rb)
				snprintf(what, sizeof(what), "%s is on replica %d only", name, c->ref_replica);
			else if (!ra)
				snprintf(what, sizeof(what), "%s is on replica %lld only", name, (long long)rep);
			else {
				char cols[256] = "";
				const char *k;
				json_t *v;
				json_object_foreach(ra, k, v) if (!json_equal(v, json_object_get(rb, k)))
				{
					size_t l = strlen(cols);
					snprintf(cols + l, sizeof(cols) - l, "%s%s", l ? ", " : "", k);
				}
				json_object_foreach(rb, k, v) if (!json_object_get(ra, k))
				{
					size_t l = strlen(cols);
					snprintf(cols + l, sizeof(cols) - l, "%s%s", l ? ", " : "", k);
				}
				snprintf(what, sizeof(what), "%s differs in %s", name, cols);
			}
		}
		char lag[128] = "";
		if (jint(ref_el, "projected_index", &pa) && jint(el, "projected_index", &pb) && pa != pb)
			snprintf(lag, sizeof(lag), " (projected up to index %lld and %lld)", (long long)pa, (long long)pb);
		/* evidence: what the history says about that key */
		struct vec ev = {0}, *ops = mm_at(&c->bykey, key, false), *ln;
		for (size_t i = 0; ops && i < ops->n; i++)
			ev_op(&ev, ops->v[i]);
		if ((ln = mm_at(&c->cmd_ln, key, false)))
			for (size_t i = 0; i < ln->n; i++)
				vec_push(&ev, ln->v[i]);
		if (strcmp(table, "nodes") == 0)
			ev_node_life(c, &ev, key);
		check_violation(c, "replicas_differ", key,
				json_pack("{s:I, s:I, s:s, s:[O?,O?]}", "replica", rep, "reference_replica",
					  (json_int_t)c->ref_replica, "table", table, "rows", ra, rb),
				&ev, "replica %lld's database differs from replica %d's: %s%s", (long long)rep,
				c->ref_replica, what, lag);
		free(ev.v);
	}
	check_done(c, "replicas_differ", checked, NULL);
}

/* ---- failover ------------------------------------------------------------- */

/* Did a failover of node record that (actor, inst) had no healthy target? */
static bool no_target_recorded(struct ctx *c, const char *node, const char *actor, json_int_t inst)
{
	struct vec *fo = mm_at(&c->ref_fo_node, node, false);
	for (size_t i = 0; fo && i < fo->n; i++) {
		const char *err = jstr(fo->v[i], "error");
		if (!err || !strstr(err, "no healthy target"))
			continue;
		json_t *as = json_object_get(fo->v[i], "assignments"), *a;
		size_t k;
		if (json_array_size(as) == 0)
			return true;
		json_array_foreach(as, k, a)
		{
			const char *aa = jstr(a, "actor_id");
			json_int_t ai = -1;
			jint(a, "instance", &ai);
			if (aa && strcmp(aa, actor) == 0 && ai == inst)
				return true;
		}
	}
	return false;
}

/* Checks one instance that was on dead node d. */
static void failover_one(struct ctx *c, const char *d, const char *actor, json_int_t inst, size_t *checked)
{
	struct vec *av = mm_at(&c->ref_actor, actor, false);
	json_int_t replicas = 0;
	if (!av || !jint(av->v[0], "replicas", &replicas) || inst >= replicas)
		return; /* deleted or scaled down since: nothing should run */
	char pk[512];
	snprintf(pk, sizeof(pk), "%s\x1f%lld", actor, (long long)inst);
	struct vec *pv = mm_at(&c->ref_pl, pk, false);
	json_t *p = pv ? pv->v[0] : NULL;
	const char *pn = p ? jstr(p, "node_id") : NULL, *ps = p ? jstr(p, "state") : NULL;
	if (pn && strcmp(pn, d) != 0 && mm_at(&c->dead, pn, false))
		return; /* moved to another node that died too: checked there */
	(*checked)++;
	bool live = pn && strcmp(pn, d) != 0 && check_live_node(c, pn);
	bool runs = live && ps && strcmp(ps, "running") == 0 && check_agent_runs(c, pn, actor, inst);
	if (runs || no_target_recorded(c, d, actor, inst))
		return;
	char why[300];
	if (!p)
		snprintf(why, sizeof(why), "it has no placement");
	else if (!pn || strcmp(pn, d) == 0)
		snprintf(why, sizeof(why), "its placement is still on %s (%s)", d, ps ? ps : "?");
	else if (!live)
		snprintf(why, sizeof(why), "its placement is on %s, whose agent is not alive", pn);
	else if (!ps || strcmp(ps, "running") != 0)
		snprintf(why, sizeof(why), "its placement is on %s in state %s", pn, ps ? ps : "?");
	else
		snprintf(why, sizeof(why), "its placement is on %s (running) but that agent does not run it", pn);
	struct vec ev = {0};
	ev_node_life(c, &ev, d);
	ev_applied(c, &ev, d, actor, inst);
	if (live)
		ev_applied(c, &ev, pn, actor, inst);
	check_violation(c, "failover", actor, json_pack("{s:I, s:s}", "instance", (json_int_t)inst, "node", d), &ev,
			"%s instance %lld was on %s, which is dead, and runs nowhere else: %s, and no failover of %s"
			" recorded 'failover failed: no healthy target' for it",
			actor, (long long)inst, d, why, d);
	free(ev.v);
}

void check_failover(struct ctx *c)
{
	size_t checked = 0, i;
	json_t *d;
	json_array_foreach(c->ref ? json_object_get(c->final, "dead_nodes") : NULL, i, d)
	{
		const char *node = json_string_value(d);
		if (!node)
			continue;
		/* what it ran: its agent's last view, and what the database still
		 * places on it (some may be in both: checked twice, reported once
		 * since the second finds the same) */
		struct mm seen = {0};
		json_t *p;
		size_t k;
		json_array_foreach(json_object_get(json_object_get(c->agents, node), "running"), k, p)
		{
			const char *a = json_string_value(json_array_get(p, 0));
			json_int_t in = json_integer_value(json_array_get(p, 1));
			char pk[512];
			snprintf(pk, sizeof(pk), "%s\x1f%lld", a ? a : "", (long long)in);
			if (a && !mm_at(&seen, pk, false) && mm_at(&seen, pk, true))
				failover_one(c, node, a, in, &checked);
		}
		struct vec *pl = mm_at(&c->ref_pl_node, node, false);
		for (k = 0; pl && k < pl->n; k++) {
			const char *a = jstr(pl->v[k], "actor_id");
			json_int_t in = 0;
			jint(pl->v[k], "instance", &in);
			char pk[512];
			snprintf(pk, sizeof(pk), "%s\x1f%lld", a ? a : "", (long long)in);
			if (a && !mm_at(&seen, pk, false) && mm_at(&seen, pk, true))
				failover_one(c, node, a, in, &checked);
		}
		mm_free(&seen);
	}
	check_done(c, "failover", checked, NULL);
}

/* ---- stuck_command -------------------------------------------------------- */

/* A command published to a node that is dead at the end waits in that node's
 * JetStream consumer: the node gets it when it comes back, or the leader fails
 * it after --command-max-attempts (minutes of backoff). Not stuck: counted as
 * "waiting_for_dead_node". Stuck is a command to a live node still open after
 * the settle period, or one never published at all. */
void check_stuck_command(struct ctx *c)
{
	size_t checked = 0, waiting = 0, i;
	json_t *row;
	json_array_foreach(c->ref ? jtable(c->ref, "commands") : NULL, i, row)
	{
		const char *id = jstr(row, "command_id"), *st = jstr(row, "status");
		checked++;
		if (!id || !st || strcmp(st, "acked") == 0 || strcmp(st, "failed") == 0 || strcmp(st, "superseded") == 0)
			continue;
		const char *type = jstr(row, "command_type"), *node = jstr(row, "target_node"),
			   *actor = jstr(row, "actor_id");
		json_int_t inst = 0, attempts = 0;
		jint(row, "instance", &inst);
		jint(row, "attempts", &attempts);
		if (node && mm_at(&c->dead, node, false) && strcmp(st, "published") == 0 && attempts >= 1) {
			waiting++;
			continue;
		}
		char obj[300] = "";
		if (actor)
			snprintf(obj, sizeof(obj), " %s/%lld", actor, (long long)inst);
		struct vec ev = {0}, *ln = mm_at(&c->cmd_ln, id, false);
		for (size_t k = 0; ln && k < ln->n; k++)
			vec_push(&ev, ln->v[k]);
		check_violation(c, "stuck_command", id, json_pack("{s:s?}", "node", node), &ev,
				"command %s (%s%s to %s) is still %s after the settle period (%lld attempts)%s", id,
				type ? type : "?", obj, node ? node : "?", st, (long long)attempts,
				node && mm_at(&c->dead, node, false) ? "; its node is dead" :
				!node || !check_live_node(c, node) ? "; its node's agent is not alive" : "");
		free(ev.v);
	}
	check_done(c, "stuck_command", checked, json_pack("{s:I}", "waiting_for_dead_node", (json_int_t)waiting));
}

/* ---- double_apply --------------------------------------------------------- */

void check_double_apply(struct ctx *c)
{
	struct mm seen = {0};
	size_t n = json_array_size(c->history), checked = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *l = json_array_get(c->history, i);
		const char *type = jstr(l, "type"), *f = jstr(l, "f"), *node = jstr(l, "node"), *cmd = jstr(l, "command");
		json_int_t disk = 0;
		if (strcmp(type, "agent") != 0 || !f || strcmp(f, "applied") != 0 || !node || !cmd)
			continue;
		jint(l, "disk", &disk);
		char k[1024];
		snprintf(k, sizeof(k), "%s\x1f%lld\x1f%s", node, (long long)disk, cmd);
		struct vec *v = mm_at(&seen, k, true);
		if (!v || vec_push(v, l) != 0) {
			c->oom = 1;
			break;
		}
		checked += v->n == 1;
		if (v->n != 2) /* reported once, at the second time, with every time */
			continue;
		for (size_t j = i + 1; j < n; j++) {
			json_t *m = json_array_get(c->history, j);
			json_int_t md = 0;
			const char *mf = jstr(m, "f"), *mn = jstr(m, "node"), *mc = jstr(m, "command");
			jint(m, "disk", &md);
			if (strcmp(jstr(m, "type"), "agent") == 0 && mf && strcmp(mf, "applied") == 0 && mn &&
			    strcmp(mn, node) == 0 && mc && strcmp(mc, cmd) == 0 && md == disk)
				vec_push(v, m);
		}
		const char *kind = jstr(l, "kind"), *actor = jstr(l, "actor");
		json_int_t inst = 0, life1 = 0, life2 = 0;
		jint(l, "instance", &inst);
		jint(v->v[0], "life", &life1);
		jint(v->v[1], "life", &life2);
		char obj[300] = "";
		if (actor)
			snprintf(obj, sizeof(obj), " %s/%lld", actor, (long long)inst);
		struct vec ev = {0};
		ev_node_life(c, &ev, node);
		for (size_t j = 0; j < v->n; j++)
			vec_push(&ev, v->v[j]);
		check_violation(c, "double_apply", cmd, json_pack("{s:s, s:I}", "node", node, "disk", disk), &ev,
				"%s applied command %s (%s%s) %zu times on one disk (%lld; lives %lld and %lld)", node, cmd,
				kind ? kind : "?", obj, v->n, (long long)disk, (long long)life1, (long long)life2);
		free(ev.v);
	}
	mm_free(&seen);
	check_done(c, "double_apply", checked, NULL);
}

/* ---- policy_behind -------------------------------------------------------- */

void check_policy_behind(struct ctx *c)
{
	size_t checked = 0, i;
	json_t *row;
	json_array_foreach(c->ref ? jtable(c->ref, "nodes") : NULL, i, row)
	{
		const char *id = jstr(row, "id");
		json_int_t target = 0, db = 0, ag = -1;
		if (!id || !jint(row, "policy_target", &target) || target <= 0 || !check_live_node(c, id))
			continue;
		checked++;
		jint(row, "policy_version", &db);
		bool agent_known = jint(json_object_get(c->agents, id), "policy_version", &ag);
		if (db == target && (!agent_known || ag == target))
			continue;
		char agent[64] = "its agent does not say";
		if (agent_known)
			snprintf(agent, sizeof(agent), "its agent reports %lld", (long long)ag);
		struct vec ev = {0};
		ev_node_life(c, &ev, id);
		/* the policy writes that made the target (the last ones acknowledged) */
		for (size_t k = c->policy_ops.n > 4 ? c->policy_ops.n - 4 : 0; k < c->policy_ops.n; k++)
			ev_op(&ev, c->policy_ops.v[k]);
		check_violation(c, "policy_behind", id, NULL, &ev,
				"%s is behind its policy: target version %lld, the database says it applied %lld, %s", id,
				(long long)target, (long long)db, agent);
		free(ev.v);
	}
	check_done(c, "policy_behind", checked, NULL);
}

/* ---- agent_state ---------------------------------------------------------- */

void check_agent_state(struct ctx *c)
{
	size_t checked = 0;
	const char *node;
	json_t *a;
	json_object_foreach(c->ref ? c->agents : NULL, node, a)
	{
		if (!check_live_node(c, node))
			continue;
		checked++;
		char extra[512] = "", missing[512] = "";
		size_t nextra = 0, nmissing = 0, k;
		struct vec ev = {0};
		json_t *p;
		/* what it runs that the database does not give it */
		json_array_foreach(json_object_get(a, "running"), k, p)
		{
			const char *actor = json_string_value(json_array_get(p, 0));
			json_int_t inst = json_integer_value(json_array_get(p, 1));
			char pk[512];
			snprintf(pk, sizeof(pk), "%s\x1f%lld", actor ? actor : "", (long long)inst);
			struct vec *pv = mm_at(&c->ref_pl, pk, false);
			const char *pn = pv ? jstr(pv->v[0], "node_id") : NULL, *ps = pv ? jstr(pv->v[0], "state") : NULL;
			if (pn && strcmp(pn, node) == 0 && ps && strcmp(ps, "running") == 0)
				continue;
			size_t l = strlen(extra);
			if (nextra++ < 5 && pn)
				snprintf(extra + l, sizeof(extra) - l, "%s%s/%lld (placed on %s, %s)", l ? ", " : "",
					 actor ? actor : "?", (long long)inst, pn, ps ? ps : "?");
			else if (nextra <= 5)
				snprintf(extra + l, sizeof(extra) - l, "%s%s/%lld (no placement)", l ? ", " : "",
					 actor ? actor : "?", (long long)inst);
			if (actor)
				ev_applied(c, &ev, node, actor, inst);
		}
		/* what the database gives it, running, that it does not run */
		struct vec *pl = mm_at(&c->ref_pl_node, node, false);
		for (k = 0; pl && k < pl->n; k++) {
			const char *actor = jstr(pl->v[k], "actor_id"), *ps = jstr(pl->v[k], "state");
			json_int_t inst = 0;
			jint(pl->v[k], "instance", &inst);
			if (!actor || !ps || strcmp(ps, "running") != 0 || check_agent_runs(c, node, actor, inst))
				continue;
			size_t l = strlen(missing);
			if (nmissing++ < 5)
				snprintf(missing + l, sizeof(missing) - l, "%s%s/%lld", l ? ", " : "", actor, (long long)inst);
			ev_applied(c, &ev, node, actor, inst);
		}
		if (nextra || nmissing) {
			ev_node_life(c, &ev, node);
			char msg_extra[600] = "", msg_missing[600] = "";
			if (nextra)
				snprintf(msg_extra, sizeof(msg_extra), "runs %zu instance%s the database does not give it: %s%s",
					 nextra, nextra > 1 ? "s" : "", extra, nextra > 5 ? ", ..." : "");
			if (nmissing)
				snprintf(msg_missing, sizeof(msg_missing), "%sdoes not run %zu running placement%s of its node: %s%s",
					 nextra ? "; it " : "", nmissing, nmissing > 1 ? "s" : "", missing,
					 nmissing > 5 ? ", ..." : "");
			check_violation(c, "agent_state", node, NULL, &ev, "%s's agent %s%s", node, msg_extra, msg_missing);
		}
		free(ev.v);
	}
	check_done(c, "agent_state", checked, NULL);
}
