/* test_ctl_args — latticectl's command line: flags anywhere (ctl_args), which
 * command the words name (ctl_resolve, against the real tree), the help of
 * every group listing each of its commands, the number and duration parsers,
 * and the exit code each answer maps to (the documented contract). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_args.h"
#include "ctl_client.h"
#include "ctl_cmd.h"
#include "ctl_util.h"
#include "tap.h"

static const struct ctl_flag flags[] = {
	{.name = "server", .short_name = 's', .value = true, .repeat = true, .metavar = "URL"},
	{.name = "output", .short_name = 'o', .value = true},
	{.name = "verbose", .short_name = 'v'},
	{.name = "module", .alias = "image", .value = true},
	{0},
};

/* Parses a space-separated command line (no quoting: the tests need none). */
static int parse(const char *line, struct ctl_args *a, char *err, size_t errlen)
{
	static char buf[512];
	static char *argv[64];
	snprintf(buf, sizeof(buf), "%s", line);
	int argc = 0;
	for (char *t = strtok(buf, " "); t && argc < 64; t = strtok(NULL, " "))
		argv[argc++] = t;
	const struct ctl_flag *const tables[] = {flags};
	return ctl_args_parse(argc, argv, tables, 1, a, err, errlen);
}

static const char *pos_joined(const struct ctl_args *a)
{
	static char out[256];
	out[0] = '\0';
	for (int i = 0; i < a->npos; i++)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? "," : "", a->pos[i]);
	return out;
}

/* ctl_resolve on a line: "cmd-name/words" or "unknown:WORD". */
static const char *resolve(const char *line)
{
	static char buf[512], out[128];
	static char *argv[64];
	snprintf(buf, sizeof(buf), "%s", line);
	int argc = 0;
	for (char *t = strtok(buf, " "); t && argc < 64; t = strtok(NULL, " "))
		argv[argc++] = t;
	int words[16], n;
	const char *unknown;
	const struct ctl_cmd *group;
	const struct ctl_cmd *c = ctl_resolve(argc, argv, words, &n, &unknown, &group);
	if (unknown) {
		snprintf(out, sizeof(out), "unknown:%s", unknown);
		return out;
	}
	snprintf(out, sizeof(out), "%s%s%s/", group ? group->name : "", group ? ">" : "", c->name);
	for (int i = 0; i < n; i++)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%d", i ? "," : "", words[i]);
	return out;
}

int main(void)
{
	tap_plan(64);
	struct ctl_args a;
	char err[256];

	/* ---- ctl_args ---- */
	is_int(parse("nodes -s http://a:1 --output=json list --server http://b:2 -v x", &a, err, sizeof(err)), 0,
	       "flags among positionals parse (%s)", err);
	is_str(pos_joined(&a), "nodes,list,x", "... the positionals, in order");
	const char *all[8];
	is_int(ctl_args_all(&a, "server", all, 8), 2, "... a repeatable flag keeps both values");
	ok(strcmp(all[0], "http://a:1") == 0 && strcmp(all[1], "http://b:2") == 0, "... in the order given");
	is_str(ctl_args_get(&a, "output"), "json", "--name=value");
	is_str(ctl_args_get(&a, "verbose"), "", "a flag without a value reads as \"\"");
	ok(ctl_args_get(&a, "module") == NULL && !ctl_args_has(&a, "module"), "a flag not given reads as NULL");
	ok(!a.help, "no help asked");

	is_int(parse("-ojson -sX", &a, err, sizeof(err)), 0, "short flags with the value attached");
	ok(strcmp(ctl_args_get(&a, "output"), "json") == 0 && strcmp(ctl_args_get(&a, "server"), "X") == 0,
	   "... -ojson and -sX");
	is_int(parse("--image ghcr.io/x:1", &a, err, sizeof(err)), 0, "an alias");
	is_str(ctl_args_get(&a, "module"), "ghcr.io/x:1", "... sets the flag it stands for");

	is_int(parse("--bogus 1", &a, err, sizeof(err)), -1, "an unknown long flag is refused");
	is_str(err, "unknown flag --bogus", "... saying which");
	is_int(parse("-x", &a, err, sizeof(err)), -1, "an unknown short flag is refused");
	is_int(parse("-o", &a, err, sizeof(err)), -1, "a value flag at the end without its value is refused");
	ok(strstr(err, "needs a value") != NULL, "... saying it needs a value: %s", err);
	is_int(parse("-o json -o wide", &a, err, sizeof(err)), -1, "a flag that does not repeat, given twice, is refused");
	ok(strstr(err, "more than once") != NULL, "... saying so: %s", err);
	is_int(parse("-v --verbose -v", &a, err, sizeof(err)), 0, "a switch given again is still just on");
	is_int(parse("--verbose=yes", &a, err, sizeof(err)), -1, "a value for a flag that takes none is refused");
	is_int(parse("-vx", &a, err, sizeof(err)), -1, "-v with something attached is refused (no bundling)");
	is_int(parse("a -- -o --bogus -", &a, err, sizeof(err)), 0, "after -- everything is a positional");
	is_str(pos_joined(&a), "a,-o,--bogus,-", "... -o, --bogus and - too");
	is_int(parse("- --help", &a, err, sizeof(err)), 0, "'-' alone is a positional (standard input)");
	ok(a.help && a.npos == 1, "... and --help sets help");
	is_int(parse("-s=x", &a, err, sizeof(err)), 0, "-s=x is the value '=x' (as getopt reads it)");
	is_str(ctl_args_get(&a, "server"), "=x", "... the value kept as given");

	/* ---- ctl_resolve, on the real tree ---- */
	is_str(resolve("nodes cordon edge-1"), "cordon/0,1", "nodes cordon ID: the command and its two words");
	is_str(resolve("-o json --server http://a:1 nodes list --region eu"), "list/4,5",
	       "global flags before the command, with their values, are skipped");
	is_str(resolve("--server=http://a:1 -ojson actors get a"), "get/2,3", "--flag=value and -oVALUE are skipped whole");
	is_str(resolve("nodes"), "nodes>list/0", "a group alone runs its default (nodes: list), the group said");
	is_str(resolve("cluster"), "cluster>status/0", "cluster alone: status");
	is_str(resolve("nodes --region eu --limit=3 -o name"), "nodes>list/0",
	       "the default's own flags before any subcommand word, with their values");
	is_str(resolve("nodes bogus"), "unknown:bogus", "an unknown subcommand is named");
	is_str(resolve("bogus"), "unknown:bogus", "an unknown command is named");
	is_str(resolve("events --since 3 extra"), "events/0", "a command without subcommands takes the rest as arguments");
	is_str(resolve(""), "latticectl/", "nothing: the root");
	is_str(resolve("chaos"), "chaos/0", "a group without a default stays the group (a usage error later)");
	is_str(resolve("policies -- list"), "policies>list/0", "words after -- are not commands");

	/* Every group's help lists each of its commands, and every command has a summary. */
	int missing = 0, nosummary = 0;
	for (const struct ctl_cmd *g = ctl_root.sub; g->name; g++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		ctl_help(g, g->name, f);
		fclose(f);
		for (const struct ctl_cmd *s = g->sub; s && s->name; s++) {
			char want[64];
			snprintf(want, sizeof(want), "\n  %s ", s->name);
			if (!strstr(buf, want)) {
				tap_diag("'%s --help' does not list '%s'", g->name, s->name);
				missing++;
			}
			nosummary += !s->summary || !s->summary[0];
		}
		nosummary += !g->summary || !g->summary[0];
		free(buf);
	}
	is_int(missing, 0, "every group's --help lists each of its commands");
	is_int(nosummary, 0, "every command has a summary");

	/* ---- numbers and durations ---- */
	long long v = 0;
	ok(ctl_parse_int("42", 0, 100, &v) == 0 && v == 42, "ctl_parse_int 42");
	ok(ctl_parse_int("101", 0, 100, &v) != 0 && ctl_parse_int("-1", 0, 100, &v) != 0, "... out of range refused");
	ok(ctl_parse_int("4x", 0, 100, &v) != 0 && ctl_parse_int("", 0, 100, &v) != 0 && ctl_parse_int(" 4", 0, 100, &v) != 0 &&
		   ctl_parse_int("+4", 0, 100, &v) != 0,
	   "... '4x', '', ' 4' and '+4' refused");
	ok(ctl_parse_int("99999999999999999999", 0, 100, &v) != 0, "... an overflow refused");
	ok(ctl_parse_duration("30s", &v) == 0 && v == 30000, "duration 30s");
	ok(ctl_parse_duration("500ms", &v) == 0 && v == 500, "duration 500ms");
	ok(ctl_parse_duration("2m", &v) == 0 && v == 120000, "duration 2m");
	ok(ctl_parse_duration("7", &v) == 0 && v == 7000, "a bare number is seconds");
	ok(ctl_parse_duration("0s", &v) != 0 && ctl_parse_duration("25h", &v) != 0 && ctl_parse_duration("3d", &v) != 0 &&
		   ctl_parse_duration("-1s", &v) != 0 && ctl_parse_duration("s", &v) != 0,
	   "durations 0s, 25h, 3d, -1s and s are refused");

	struct ctl_buf b = {0};
	ctl_buf_urlenc(&b, "gpu=true a/b%é~._-");
	is_str(ctl_buf_str(&b), "gpu%3Dtrue%20a%2Fb%25%C3%A9~._-", "query values are percent-encoded but for A-Za-z0-9-._~");
	ctl_buf_free(&b);

	/* ---- exit codes: the documented contract (latticectl --help, latticectl(1)) ---- */
	is_int(ctl_exit_for(200, "", false), 0, "200: exit 0");
	is_int(ctl_exit_for(204, "", true), 0, "204: exit 0");
	is_int(ctl_exit_for(400, "invalid_field", true), 2, "400: exit 2 (usage)");
	is_int(ctl_exit_for(413, "payload_too_large", true), 2, "413: exit 2 (usage: the file)");
	is_int(ctl_exit_for(404, "not_found", false), 3, "404: exit 3");
	is_int(ctl_exit_for(409, "insufficient_resources", true), 4, "409: exit 4");
	is_int(ctl_exit_for(403, "capability_denied", true), 1, "403: exit 1");
	is_int(ctl_exit_for(422, "invalid_request", true), 1, "422: exit 1");
	is_int(ctl_exit_for(500, "internal", false), 1, "500: exit 1");
	is_int(ctl_exit_for(503, "no_leader", true), 5, "503 no_leader on a write: exit 5 (refused, nothing done)");
	is_int(ctl_exit_for(503, "unavailable", true), 6, "503 unavailable on a write: exit 6 (outcome unknown)");
	is_int(ctl_exit_for(503, "projection_lagging", false), 5, "503 on a read: exit 5");
	return tap_done();
}
