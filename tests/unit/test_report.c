/* test_report — the report of a chaos run (sim/report.h, docs/chaos.md "Report"):
 * on the fixture run tests/data/chaos/report-run/ every figure is the one worked
 * out by hand from its files; the summary has its lines; the timeline is
 * well-formed XML (xmllint) with a lane per replica and the violation's marks;
 * text from the run is escaped; an empty run still makes a valid report; the
 * displaced-actor rule and its fallback. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"
#include "tap.h"

extern char **environ;

static char *slurp(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0, r;
	char *buf = malloc(cap + 1);
	while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *nb = realloc(buf, (cap *= 2) + 1);
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

static int put(const char *dir, const char *name, const char *text)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static int copy(const char *from, const char *to, const char *name)
{
	char *s = slurp(from, name);
	int rc = s ? put(to, name, s) : -1;
	free(s);
	return rc;
}

/* xmllint --noout DIR/NAME: 0 when well-formed. */
static int xmllint(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	char *argv[] = {"xmllint", "--noout", path, NULL};
	pid_t pid;
	int rc = posix_spawnp(&pid, "xmllint", NULL, NULL, argv, environ);
	if (rc != 0) {
		tap_diag("xmllint: %s (Debian: libxml2-utils; scripts/deps.sh installs it)", strerror(rc));
		return -1;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; hay && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* The line of text starting with prefix, or "" (static buffer). */
static const char *line_of(const char *text, const char *prefix)
{
	static char buf[512];
	buf[0] = '\0';
	size_t pl = strlen(prefix);
	for (const char *p = text; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len >= pl && strncmp(p, prefix, pl) == 0) {
			snprintf(buf, sizeof(buf), "%.*s", (int)len, p);
			return buf;
		}
		p = e ? e + 1 : NULL;
	}
	return buf;
}

static long long num(json_t *rep, const char *path)
{
	json_t *v = rep;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
		v = json_object_get(v, k);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -999999;
}

static json_t *find(json_t *list, const char *key, const char *value)
{
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) if (json_string_value(json_object_get(e, key)) &&
					   strcmp(json_string_value(json_object_get(e, key)), value) == 0) return e;
	return NULL;
}

/* report_dir with its stdout in DIR/stdout.txt (TAP owns our stdout). */
static int report_dir_quiet(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/stdout.txt", dir);
	fflush(stdout);
	int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (saved < 0 || fd < 0)
		return -2;
	dup2(fd, 1);
	close(fd);
	int rc = report_dir(dir, err, errlen);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	return rc;
}

static void fixture(const char *tmp)
{
	const char *srcdir = getenv("top_srcdir");
	char from[4096], err[512] = "";
	snprintf(from, sizeof(from), "%s/tests/data/chaos/report-run", srcdir ? srcdir : ".");
	const char *files[] = {"scenario.json", "history.jsonl", "final.json", "violations.json"};
	int copied = 0;
	for (size_t i = 0; i < 4; i++)
		copied += copy(from, tmp, files[i]) == 0;
	is_int(copied, 4, "the fixture run's four files copied from %s", from);

	ok(report_dir_quiet(tmp, err, sizeof(err)) == 0, "report_dir on the fixture (%s)", err);
	char *rj = slurp(tmp, "report.json"), *sum = slurp(tmp, "summary.txt"), *svg = slurp(tmp, "timeline.svg");
	char *out = slurp(tmp, "stdout.txt");
	ok(rj && sum && svg, "it wrote report.json, summary.txt and timeline.svg");
	ok(out && sum && strcmp(out, sum) == 0, "and printed summary.txt");
	json_error_t je;
	json_t *rep = rj ? json_loads(rj, 0, &je) : NULL;
	ok(rep != NULL, "report.json is JSON");

	/* Figures worked out by hand from the fixture (docs/chaos.md "Report"). */
	is_str(json_string_value(json_object_get(rep, "scenario")), "report-run", "name: from the run start line");
	is_str(json_string_value(json_object_get(rep, "verdict")), "violations", "verdict");
	is_int(num(rep, "run.length_ms"), 47500, "run length: the last line (47500)");
	is_int(num(rep, "run.agents"), 6, "6 agents");
	is_int(num(rep, "run.replicas"), 3, "3 replicas");
	is_int(num(rep, "faults.total"), 5, "5 faults");
	is_int(num(rep, "faults.by_kind.kill_agents"), 1, "one kill_agents");
	is_int(num(rep, "detection.nodes"), 3, "detection: 3 nodes (eu-0001, eu-0004 killed, eu-0005 crashed)");
	is_int(num(rep, "detection.detected"), 3, "all 3 detected");
	is_int(num(rep, "detection.p50_ms"), 3250, "detection p50 3250 (of 3100, 3250, 3500)");
	is_int(num(rep, "detection.p99_ms"), 3500, "detection p99 3500");
	is_int(num(rep, "detection.max_ms"), 3500, "detection max 3500");
	is_int(num(rep, "failover.displaced"), 3, "displaced: 3 (w-0004 was stopped before the kill)");
	is_int(num(rep, "failover.moved"), 3, "all 3 moved");
	is_int(num(rep, "failover.p50_ms"), 4100, "failover p50 4100 (of 4000, 4100, 4400)");
	is_int(num(rep, "failover.max_ms"), 4400, "failover max 4400");
	json_t *fo = find(json_object_get(json_object_get(rep, "failover"), "list"), "actor", "w-0001");
	is_str(json_string_value(json_object_get(fo, "to_node")), "eu-0003",
	       "w-0001 failed over to eu-0003 (its start on eu-0002 was an error)");
	json_t *fnode = find(json_object_get(json_object_get(rep, "failover"), "nodes"), "node", "eu-0001");
	is_int(num(fnode, "last_ms"), 29400, "eu-0001's failover done at 29400 (its last instance)");
	is_int(num(rep, "commands.replica"), 1, "commands counted on replica 1");
	is_int(num(rep, "commands.sent"), 15, "commands sent 15");
	is_int(num(rep, "commands.acked"), 14, "acked 14");
	is_int(num(rep, "commands.retried"), 3, "retried 3 (attempts > 1)");
	is_int(num(rep, "commands.failed"), 1, "failed 1");
	is_int(num(rep, "leaders.changes"), 2, "leader changes 2 (the first leader is not a change)");
	is_int(num(rep, "leaders.no_leader_ms"), 1700, "no leader for 1700 ms");
	is_int(num(rep, "workload.ops"), 9, "9 ops");
	ok(num(rep, "workload.ok") == 7 && num(rep, "workload.fail") == 1 && num(rep, "workload.info") == 1,
	   "7 ok, 1 fail, 1 info");
	ok(num(rep, "workload.p50_ms") == 50 && num(rep, "workload.p99_ms") == 100, "ok latency p50 50, p99 100");
	ok(num(rep, "workload.by_f.scale.fail") == 1 && num(rep, "workload.by_f.scale.p50_ms") == 50 &&
		   num(rep, "workload.by_f.create.info") == 1,
	   "by f: scale 1 fail, p50 50; create 1 info");
	is_int(num(rep, "violations.total"), 1, "1 violation");
	is_int(num(rep, "violations.by_check.stale_read"), 1, "... a stale_read");
	is_int(num(json_array_get(json_object_get(json_object_get(rep, "violations"), "list"), 0), "t_ms"), 5000,
	       "... at its first evidence (5000)");

	/* summary.txt: one table, aligned */
	is_str(line_of(sum, "lattice chaos run"), "lattice chaos run: report-run -- 1 VIOLATION", "summary: title");
	is_str(line_of(sum, "run length"), "run length         47.5 s", "summary: run length");
	is_str(line_of(sum, "faults"),
	       "faults             5  (pg 1, kill_replica 1, partition 1, kill_agents 1, crash_agents 1)",
	       "summary: faults by kind");
	is_str(line_of(sum, "detection"),
	       "detection                  3      3250      3500      3500   of 3 nodes, 0 undetected",
	       "summary: detection n p50 p99 max");
	is_str(line_of(sum, "failover"),
	       "failover                   3      4100      4400      4400   of 3 displaced, 0 not moved",
	       "summary: failover n p50 p99 max");
	is_str(line_of(sum, "displaced actors"), "displaced actors           3", "summary: displaced actors");
	is_str(line_of(sum, "commands"),
	       "commands                  15        14         3         1          0   (replica 1)",
	       "summary: commands sent acked retried failed superseded");
	is_str(line_of(sum, "leader changes"), "leader changes     2  (11.8 s r2, 21.5 s r3)  no leader 1.7 s",
	       "summary: leader changes");
	is_str(line_of(sum, "  all"), "  all                      9         7         1         1        50       100",
	       "summary: ops");
	ok(strstr(sum ? sum : "", "VIOLATIONS: 1  (stale_read 1)\n  stale_read: read of w-0002 on replica 3") != NULL,
	   "summary: the violation with its message");

	/* timeline.svg */
	is_int(xmllint(tmp, "timeline.svg"), 0, "timeline.svg is well-formed XML (xmllint --noout)");
	is_int(count(svg, "class=\"lane replica\""), 3, "one lane per replica");
	ok(strstr(svg ? svg : "", "id=\"lane-r1\"") && strstr(svg ? svg : "", "id=\"lane-r3\""), "lanes r1..r3");
	is_int(count(svg, "class=\"violation\""), 4, "the violation: a mark at each of its 4 evidence lines");
	ok(strstr(svg ? svg : "", "<title>stale_read w-0002: read of w-0002") != NULL, "... with its message as tooltip");
	ok(strstr(svg ? svg : "", "5090 &lt; 6000 &amp; before") != NULL, "... escaped");
	is_int(count(svg, "class=\"death\""), 3, "3 node deaths");
	is_int(count(svg, "class=\"failover\""), 1, "1 failover mark (eu-0001)");
	ok(strstr(svg ? svg : "", "kill_agents \xc3\x97" "2") != NULL, "agent fault band: kind and target count");
	ok(strstr(svg ? svg : "", "<script") == NULL && strstr(svg ? svg : "", "href") == NULL,
	   "no script, no link");
	json_decref(rep);
	free(rj);
	free(sum);
	free(svg);
	free(out);
}

static void empty(const char *tmp)
{
	char err[512] = "";
	put(tmp, "scenario.json", "{\"agents\":[{\"count\":2,\"prefix\":\"eu\"}]}\n");
	put(tmp, "history.jsonl", "");
	put(tmp, "final.json", "{\"t\":0,\"replicas\":[],\"agents\":{},\"dead_nodes\":[]}\n");
	put(tmp, "violations.json", "{\"violations\":[],\"checks\":{}}\n");
	ok(report_dir_quiet(tmp, err, sizeof(err)) == 0, "an empty history: a report (%s)", err);
	char *rj = slurp(tmp, "report.json"), *sum = slurp(tmp, "summary.txt");
	json_t *rep = rj ? json_loads(rj, 0, NULL) : NULL;
	ok(rep && json_is_null(json_object_get(json_object_get(rep, "detection"), "p50_ms")) &&
		   num(rep, "faults.total") == 0 && num(rep, "commands.sent") == 0,
	   "... no faults, no detection figure, no commands");
	is_str(json_string_value(json_object_get(rep, "verdict")), "pass", "... verdict pass");
	ok(sum && strstr(sum, "\nVIOLATIONS: none\n"), "... VIOLATIONS: none");
	is_int(xmllint(tmp, "timeline.svg"), 0, "... a well-formed timeline");
	json_decref(rep);
	free(rj);
	free(sum);
	unlink(strcat(strcpy(err, tmp), "/violations.json"));
	ok(report_dir_quiet(tmp, err, sizeof(err)) < 0 && strstr(err, "violations.json"),
	   "no violations.json: refused naming it (%s)", err);
}

/* Text from the run (names, node ids, messages) cannot break the picture. */
static void escaping(const char *tmp)
{
	char err[512] = "";
	json_t *sc = json_pack("{s:s}", "name", "a<b & \"c\" 'd' \x01 ]]>");
	json_t *hist = json_loads(
		"[{\"t\":0,\"type\":\"run\",\"f\":\"start\"},"
		"{\"t\":100,\"type\":\"nemesis\",\"f\":\"kill_agents\",\"phase\":\"start\",\"id\":1,\"targets\":[\"n<1>&\"]},"
		"{\"t\":900,\"type\":\"observe\",\"f\":\"node_status\",\"node\":\"n<1>&\",\"status\":\"unhealthy\"},"
		"{\"t\":1000,\"type\":\"nemesis\",\"f\":\"x</text><script>\",\"phase\":\"start\",\"id\":2,\"targets\":[]}]",
		0, NULL);
	json_t *fin = json_object(), *vio = json_loads("{\"violations\":[{\"check\":\"c<\",\"key\":\"k&\",\"message\":"
						       "\"m\\u0002<>\",\"evidence\":[{\"t\":50}]}]}",
						       0, NULL);
	ok(hist && vio && report_write(tmp, sc, hist, fin, vio, err, sizeof(err)) == 0, "a run full of markup (%s)",
	   err);
	char *svg = slurp(tmp, "timeline.svg");
	is_int(xmllint(tmp, "timeline.svg"), 0, "... still well-formed XML");
	ok(svg && strstr(svg, "a&lt;b &amp; &quot;c&quot; &apos;d&apos;   ]]&gt;") && strstr(svg, "n&lt;1&gt;&amp;") &&
		   !strstr(svg, "<script"),
	   "... every text escaped, control characters made spaces");
	free(svg);
	json_decref(sc);
	json_decref(hist);
	json_decref(fin);
	json_decref(vio);
}

/* The displaced-actor rule: agent lines first; without them, final.json's
 * failovers of the node. A node's detection is not taken from a later fault. */
static void rules(void)
{
	json_t *hist = json_loads(
		"[{\"t\":10,\"type\":\"agent\",\"f\":\"applied\",\"node\":\"a\",\"command\":\"c1\",\"kind\":\"actor_start\","
		"\"actor\":\"x\",\"instance\":2,\"status\":\"ok\"},"
		"{\"t\":1000,\"type\":\"nemesis\",\"f\":\"kill_agents\",\"phase\":\"start\",\"id\":1,\"targets\":[\"a\",\"b\"]},"
		"{\"t\":2000,\"type\":\"nemesis\",\"f\":\"kill_agents\",\"phase\":\"end\",\"id\":1},"
		"{\"t\":2500,\"type\":\"agent\",\"f\":\"applied\",\"node\":\"b\",\"command\":\"c2\",\"kind\":\"actor_start\","
		"\"actor\":\"x\",\"instance\":2,\"status\":\"ok\"},"
		"{\"t\":2600,\"type\":\"agent\",\"f\":\"applied\",\"node\":\"c\",\"command\":\"c3\",\"kind\":\"actor_start\","
		"\"actor\":\"y\",\"instance\":0,\"status\":\"ok\"},"
		"{\"t\":2700,\"type\":\"agent\",\"f\":\"applied\",\"node\":\"c\",\"command\":\"c4\",\"kind\":\"actor_start\","
		"\"actor\":\"x\",\"instance\":2,\"status\":\"ok\"},"
		"{\"t\":5000,\"type\":\"nemesis\",\"f\":\"crash_agents\",\"phase\":\"start\",\"id\":2,\"targets\":[\"a\"]},"
		"{\"t\":8000,\"type\":\"observe\",\"f\":\"node_status\",\"node\":\"a\",\"status\":\"unhealthy\"}]",
		0, NULL);
	json_t *fin = json_loads(
		"{\"t\":9000,\"replicas\":[{\"replica\":1,\"alive\":false,\"tables\":{\"commands\":[]}},"
		"{\"replica\":2,\"alive\":true,\"tables\":{\"commands\":[{\"status\":\"acked\",\"attempts\":1}],"
		"\"failovers\":[{\"node_id\":\"b\",\"assignments\":[{\"actor_id\":\"y\",\"instance\":0},"
		"{\"actor_id\":\"z\",\"instance\":1}]}]}}]}",
		0, NULL);
	json_t *sc = json_object();
	json_t *rep = report_build("r", sc, hist, fin, NULL);
	json_t *det = json_object_get(json_object_get(rep, "detection"), "list");
	ok(json_array_size(det) == 3 && json_is_null(json_object_get(json_array_get(det, 0), "detection_ms")) &&
		   num(json_array_get(det, 2), "detection_ms") == 3000,
	   "a's first kill undetected (its unhealthy belongs to the crash at 5000: 3000 ms)");
	is_int(num(rep, "detection.undetected"), 2, "a and b undetected in fault 1");
	json_t *list = json_object_get(json_object_get(rep, "failover"), "list");
	json_t *x = find(list, "actor", "x"), *y = find(list, "actor", "y"), *z = find(list, "actor", "z");
	ok(x && strcmp(json_string_value(json_object_get(x, "source")), "history") == 0 &&
		   strcmp(json_string_value(json_object_get(x, "to_node")), "c") == 0 && num(x, "failover_ms") == 1700,
	   "x/2 displaced from a (agent lines); its start on b (also killed) does not count: c after 1700 ms");
	ok(y && z && strcmp(json_string_value(json_object_get(y, "source")), "final") == 0 && num(y, "failover_ms") == 1600 &&
		   json_is_null(json_object_get(z, "to_node")),
	   "b had no agent line: displaced from final.json's failover (y moved after 1600 ms, z never)");
	ok(num(rep, "failover.displaced") == 4 && num(rep, "failover.not_moved") == 2,
	   "4 displaced (x and y, z from fault 1; x again from the crash), 2 not moved");
	is_int(num(rep, "commands.replica"), 2, "commands of the first live replica (2)");
	json_decref(rep);
	json_decref(sc);
	json_decref(hist);
	json_decref(fin);
}

/* An instance the workload deleted (or scaled away) around the fault is not
 * displaced: a later create's start is no failover (found in mass-loss.json's
 * run: a delete 5 ms before the kill, a create 46 s later). */
static void removed(void)
{
	json_t *hist = json_loads(
		"[{\"t\":10,\"type\":\"agent\",\"f\":\"applied\",\"node\":\"a\",\"command\":\"c1\",\"kind\":\"actor_start\","
		"\"actor\":\"x\",\"instance\":0,\"status\":\"ok\"},"
		"{\"t\":11,\"type\":\"agent\",\"f\":\"applied\",\"node\":\"a\",\"command\":\"c2\",\"kind\":\"actor_start\","
		"\"actor\":\"y\",\"instance\":1,\"status\":\"ok\"},"
		"{\"t\":12,\"type\":\"agent\",\"f\":\"applied\",\"node\":\"a\",\"command\":\"c3\",\"kind\":\"actor_start\","
		"\"actor\":\"z\",\"instance\":0,\"status\":\"ok\"},"
		"{\"t\":995,\"type\":\"invoke\",\"op\":1,\"f\":\"delete\",\"key\":\"x\"},"
		"{\"t\":1000,\"type\":\"nemesis\",\"f\":\"kill_agents\",\"phase\":\"start\",\"id\":1,\"targets\":[\"a\"]},"
		"{\"t\":1200,\"type\":\"invoke\",\"op\":2,\"f\":\"scale\",\"key\":\"y\",\"value\":{\"replicas\":1}},"
		"{\"t\":3000,\"type\":\"agent\",\"f\":\"applied\",\"node\":\"b\",\"command\":\"c4\",\"kind\":\"actor_start\","
		"\"actor\":\"z\",\"instance\":0,\"status\":\"ok\"},"
		"{\"t\":40000,\"type\":\"invoke\",\"op\":3,\"f\":\"create\",\"key\":\"x\",\"value\":{\"replicas\":1}},"
		"{\"t\":40010,\"type\":\"agent\",\"f\":\"applied\",\"node\":\"b\",\"command\":\"c5\",\"kind\":\"actor_start\","
		"\"actor\":\"x\",\"instance\":0,\"status\":\"ok\"}]",
		0, NULL);
	json_t *sc = json_object();
	json_t *rep = report_build("r", sc, hist, NULL, NULL);
	ok(num(rep, "failover.displaced") == 1 && num(rep, "failover.max_ms") == 2000,
	   "x deleted and y scaled to 1 around the kill: not displaced; z alone, moved after 2000 ms");
	json_decref(rep);
	json_decref(sc);
	json_decref(hist);
}

int main(void)
{
	tap_plan(73);
	char t1[] = "/tmp/test_report.XXXXXX", t2[] = "/tmp/test_report.XXXXXX", t3[] = "/tmp/test_report.XXXXXX";
	if (!mkdtemp(t1) || !mkdtemp(t2) || !mkdtemp(t3)) {
		tap_diag("mkdtemp: %s", strerror(errno));
		return 1;
	}
	fixture(t1);
	empty(t2);
	escaping(t3);
	rules();
	removed();
	/* Leave nothing behind (KEEP_REPORT=1 keeps the fixture's output to look at). */
	const char *names[] = {"scenario.json", "history.jsonl", "final.json", "violations.json", "report.json",
			       "summary.txt", "timeline.svg", "stdout.txt"};
	char *dirs[] = {t1, t2, t3};
	for (int d = getenv("KEEP_REPORT") ? 1 : 0; d < 3; d++) {
		char p[4096];
		for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
			snprintf(p, sizeof(p), "%s/%s", dirs[d], names[i]);
			unlink(p);
		}
		rmdir(dirs[d]);
	}
	if (getenv("KEEP_REPORT"))
		tap_diag("the fixture's report: %s", t1);
	return tap_done();
}
