/* ctl_cmd — see ctl_cmd.h. */
#include "ctl_cmd.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_ops.h"
#include "ctl_util.h"

#define WRAP 80

static const struct ctl_cmd *child(const struct ctl_cmd *c, const char *name)
{
	for (const struct ctl_cmd *s = c->sub; s && s->name; s++)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static const struct ctl_flag *global_short(char ch)
{
	for (const struct ctl_flag *f = ctl_global_flags; f->name; f++)
		if (f->short_name == ch)
			return f;
	return NULL;
}

const struct ctl_cmd *ctl_resolve(int argc, char **argv, int *word_idx, int *nwords, const char **unknown,
				  const struct ctl_cmd **group)
{
	const struct ctl_cmd *cmd = &ctl_root;
	const char *stop = NULL;
	*nwords = 0;
	*unknown = NULL;
	*group = NULL;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			break;
		if (a[0] == '-' && a[1] != '\0') {
			/* A flag before the command's words: a global one, or one of the
			 * default of the group named so far ("nodes --region eu"); its
			 * value is skipped too. */
			const struct ctl_cmd *d = cmd->dflt ? child(cmd, cmd->dflt) : NULL;
			const struct ctl_flag *const t[] = {ctl_global_flags, d ? d->flags : NULL};
			const struct ctl_flag *f = NULL;
			bool inline_value = false;
			if (a[1] == '-') {
				char name[64];
				size_t nl = strcspn(a + 2, "=");
				inline_value = a[2 + nl] == '=';
				if (nl < sizeof(name)) {
					memcpy(name, a + 2, nl);
					name[nl] = '\0';
					f = ctl_flag_find(t, 2, name);
				}
			} else {
				f = global_short(a[1]);
				for (const struct ctl_flag *g = d ? d->flags : NULL; !f && g && g->name; g++)
					if (g->short_name == a[1])
						f = g;
				inline_value = a[2] != '\0';
			}
			if (f && f->value && !inline_value)
				i++;
			continue;
		}
		if (!cmd->sub)
			break; /* a command's positional arguments */
		const struct ctl_cmd *c = child(cmd, a);
		if (!c) {
			stop = a;
			break;
		}
		cmd = c;
		word_idx[(*nwords)++] = i;
	}
	if (cmd->sub) {
		if (stop)
			*unknown = stop;
		else if (cmd->dflt) {
			*group = cmd;
			cmd = child(cmd, cmd->dflt);
		}
	}
	return cmd;
}

/* ---- help -------------------------------------------------------------------------------- */

/* text wrapped at WRAP columns, each line after the first indented by indent. */
static void wrapped(FILE *out, const char *text, size_t col, size_t indent)
{
	const char *p = text;
	bool first = true;
	while (*p) {
		size_t wl = strcspn(p, " ");
		if (!first && col + 1 + wl > WRAP) {
			fprintf(out, "\n%*s", (int)indent, "");
			col = indent;
		} else if (!first) {
			fputc(' ', out);
			col++;
		}
		fwrite(p, 1, wl, out);
		col += wl;
		first = false;
		p += wl;
		p += strspn(p, " ");
	}
	fputc('\n', out);
}

static void flag_lines(FILE *out, const struct ctl_flag *flags, bool with_help)
{
	char left[96];
	size_t w = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (const struct ctl_flag *f = flags; f && f->name; f++) {
			int n = snprintf(left, sizeof(left), "  %c%c%c --%s%s%s", f->short_name ? '-' : ' ',
					 f->short_name ? f->short_name : ' ', f->short_name ? ',' : ' ', f->name,
					 f->value ? " " : "", f->value ? (f->metavar ? f->metavar : "VALUE") : "");
			if (pass == 0) {
				if ((size_t)n > w)
					w = (size_t)n;
				continue;
			}
			fprintf(out, "%-*s  ", (int)w, left);
			struct ctl_buf b = {0};
			ctl_buf_puts(&b, f->help ? f->help : "");
			if (f->repeat)
				ctl_buf_puts(&b, " (repeatable)");
			if (f->alias)
				ctl_buf_printf(&b, " (also --%s)", f->alias);
			wrapped(out, ctl_buf_str(&b), w + 2, w + 2);
			ctl_buf_free(&b);
		}
		if (pass == 0 && with_help) {
			int n = snprintf(left, sizeof(left), "  -h, --help");
			if ((size_t)n > w)
				w = (size_t)n;
		}
	}
	if (with_help)
		fprintf(out, "%-*s  this help\n", (int)w, "  -h, --help");
}

static const char exit_codes[] = "Exit codes:\n"
				 "  0  success\n"
				 "  1  the server refused or failed the request (403, 422, 500...)\n"
				 "  2  usage: a bad command, flag, argument or file, or a request the server\n"
				 "     found malformed (400)\n"
				 "  3  not found (404)\n"
				 "  4  conflict (409): already exists, insufficient resources, in use\n"
				 "  5  unavailable: no replica could be reached or take it; nothing was done\n"
				 "  6  unknown outcome: a write was sent but not answered (or 503 unavailable,\n"
				 "     commit_timeout): read it back, or retry with the same --idempotency-key\n";

void ctl_help(const struct ctl_cmd *cmd, const char *path, FILE *out)
{
	const char *sp = path[0] ? " " : "";
	fprintf(out, "%s%s%s\n\nUsage:\n  latticectl%s%s %s\n", cmd == &ctl_root ? "latticectl - " : "",
		cmd->summary ? cmd->summary : "", cmd == &ctl_root ? "" : ".", sp, path, cmd->usage ? cmd->usage : "");
	if (cmd->help)
		fprintf(out, "\n%s", cmd->help);
	if (cmd->sub) {
		fprintf(out, "\nCommands:\n");
		size_t w = 0;
		for (const struct ctl_cmd *s = cmd->sub; s->name; s++)
			if (strlen(s->name) > w)
				w = strlen(s->name);
		for (const struct ctl_cmd *s = cmd->sub; s->name; s++)
			fprintf(out, "  %-*s  %s%s\n", (int)w, s->name, s->summary,
				cmd->dflt && strcmp(cmd->dflt, s->name) == 0 ? " (the default)" : "");
	}
	if (cmd->flags && cmd->flags->name) {
		fprintf(out, "\nFlags:\n");
		flag_lines(out, cmd->flags, false);
	}
	if (cmd == &ctl_root) {
		fprintf(out, "\nGlobal flags (every command takes them):\n");
		flag_lines(out, ctl_global_flags, true);
	} else {
		fprintf(out, "\nGlobal flags: -s/--server URL, --token TOKEN, --config FILE, -o/--output FORMAT,\n"
			     "--no-headers, --timeout DURATION, --idempotency-key KEY, --consistent,\n"
			     "-v/--verbose, -h/--help (latticectl --help says more).\n");
	}
	if (cmd == &ctl_root) {
		fprintf(out, "\nEnvironment: LATTICE_SERVER, LATTICE_TOKEN, LATTICE_TIMEOUT, LATTICECTL_CONFIG.\n"
			     "Precedence: flag, then environment, then config file, then default.\n\n%s",
			exit_codes);
		fprintf(out, "\nRun 'latticectl COMMAND --help' for a command's own help; man latticectl for all.\n");
	} else if (cmd->sub) {
		fprintf(out, "\nRun 'latticectl %s COMMAND --help' for a command's own help.\n", path);
	} else {
		fprintf(out, "\nExit codes: 0 ok, 1 refused, 2 usage, 3 not found, 4 conflict, 5 unavailable,\n"
			     "6 unknown outcome (latticectl --help).\n");
	}
}

/* For a command line that names no command it can run: the usage line and
 * the commands there are, on stderr. */
static void short_usage(const struct ctl_cmd *cmd, const char *path)
{
	fprintf(stderr, "Usage:\n  latticectl%s%s %s\n", path[0] ? " " : "", path, cmd->usage ? cmd->usage : "");
	if (cmd->sub) {
		fprintf(stderr, "\nCommands:\n");
		for (const struct ctl_cmd *s = cmd->sub; s->name; s++)
			fprintf(stderr, "  %-14s %s\n", s->name, s->summary);
	}
	fprintf(stderr, "\nRun 'latticectl%s%s --help' for more.\n", path[0] ? " " : "", path);
}

int ctl_usage_error(struct ctl_ctx *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("error: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nRun 'latticectl%s%s --help' for usage.\n", x->path[0] ? " " : "", x->path);
	return CTL_EXIT_USAGE;
}

void ctl_print_json(struct ctl_ctx *x, const json_t *j)
{
	if (json_dumpf(j, x->o, JSON_INDENT(2) | JSON_ENCODE_ANY) == 0)
		fputc('\n', x->o);
}

/* ---- running ------------------------------------------------------------------------------ */

static const char *env(const char *name)
{
	return getenv(name);
}

static bool needs_server(const struct ctl_cmd *c)
{
	return c->run != ctl_run_completion && c->run != ctl_run_version && c->run != ctl_run_help;
}

static void path_of(int argc, char **argv, const int *idx, int n, char *out, size_t len)
{
	out[0] = '\0';
	for (int i = 0; i < n && idx[i] < argc; i++)
		snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", argv[idx[i]]);
}

int ctl_main(int argc, char **argv)
{
	int words[16], nwords = 0;
	const char *unknown = NULL;
	const struct ctl_cmd *group = NULL;
	const struct ctl_cmd *cmd = ctl_resolve(argc, argv, words, &nwords, &unknown, &group);
	struct ctl_ctx x;
	memset(&x, 0, sizeof(x));
	x.o = stdout;
	x.cmd = cmd;
	path_of(argc, argv, words, nwords, x.path, sizeof(x.path));
	char group_path[sizeof(x.path)];
	snprintf(group_path, sizeof(group_path), "%s", x.path);
	if (group) /* "nodes" runs "nodes list" */
		snprintf(x.path + strlen(x.path), sizeof(x.path) - strlen(x.path), " %s", cmd->name);
	if (unknown) {
		fprintf(stderr, "error: unknown command '%s' for 'latticectl%s%s'\n\n", unknown, x.path[0] ? " " : "",
			x.path);
		short_usage(cmd, x.path);
		return CTL_EXIT_USAGE;
	}

	/* Everything but the command's words is parsed against its flags. */
	char **rest = ctl_xmalloc(((size_t)argc + 1) * sizeof(*rest));
	int nrest = 0;
	bool help = false;
	for (int i = 0, w = 0; i < argc; i++) {
		if (w < nwords && words[w] == i) {
			w++;
			continue;
		}
		rest[nrest++] = argv[i];
	}
	for (int i = 0; i < nrest && strcmp(rest[i], "--") != 0; i++)
		help |= strcmp(rest[i], "-h") == 0 || strcmp(rest[i], "--help") == 0;
	if (help) { /* "nodes --help" is the group's help, not its default's */
		if (group)
			ctl_help(group, group_path, stdout);
		else
			ctl_help(cmd, x.path, stdout);
		free(rest);
		return CTL_EXIT_OK;
	}
	const struct ctl_flag *const tables[] = {ctl_global_flags, cmd->flags};
	char err[300];
	int rc = ctl_args_parse(nrest, rest, tables, cmd->flags ? 2 : 1, &x.args, err, sizeof(err));
	free(rest); /* x.args points into argv, not into rest */
	if (rc != 0)
		return ctl_usage_error(&x, "%s", err);
	if (ctl_args_has(&x.args, "version"))
		return ctl_run_version(&x);
	if (!cmd->run) {
		if (cmd == &ctl_root)
			fprintf(stderr, "error: no command given\n\n");
		else
			fprintf(stderr, "error: 'latticectl %s' needs a command\n\n", x.path);
		short_usage(cmd, x.path);
		return CTL_EXIT_USAGE;
	}
	if (x.args.npos < cmd->min_pos || (cmd->max_pos >= 0 && x.args.npos > cmd->max_pos)) {
		if (x.args.npos < cmd->min_pos)
			return ctl_usage_error(&x, "'latticectl %s' needs %s", x.path, cmd->usage);
		return ctl_usage_error(&x, "unexpected argument '%s' for 'latticectl %s'", x.args.pos[cmd->max_pos],
				       x.path);
	}
	const char *o = ctl_args_get(&x.args, "output");
	if (!o || strcmp(o, "table") == 0)
		x.out = CTL_OUT_TABLE;
	else if (strcmp(o, "wide") == 0)
		x.out = CTL_OUT_WIDE;
	else if (strcmp(o, "json") == 0)
		x.out = CTL_OUT_JSON;
	else if (strcmp(o, "name") == 0)
		x.out = CTL_OUT_NAME;
	else
		return ctl_usage_error(&x, "unknown output format '%s' (table, wide, json or name)", o);
	x.headers = !ctl_args_has(&x.args, "no-headers");
	x.consistent = ctl_args_has(&x.args, "consistent");
	x.now = time(NULL);
	if (!needs_server(cmd))
		return cmd->run(&x);

	const char *servers[CTL_ARGS_MAX];
	struct ctl_config_flags fl = {
		.servers = servers,
		.nservers = ctl_args_all(&x.args, "server", servers, CTL_ARGS_MAX),
		.token = ctl_args_get(&x.args, "token"),
		.timeout = ctl_args_get(&x.args, "timeout"),
		.config = ctl_args_get(&x.args, "config"),
	};
	if (ctl_config_resolve(&x.cfg, &fl, env, err, sizeof(err)) != 0) {
		ctl_config_free(&x.cfg);
		return ctl_usage_error(&x, "%s", err);
	}
	if (x.cfg.warning[0])
		fprintf(stderr, "warning: %s\n", x.cfg.warning);
	ctl_client_init(&x.client, &x.cfg);
	x.client.verbose = ctl_args_has(&x.args, "verbose");
	x.client.idem_key = ctl_args_get(&x.args, "idempotency-key");
	if (x.client.idem_key && (strlen(x.client.idem_key) > 255 || !ctl_token_valid(x.client.idem_key)))
		rc = ctl_usage_error(&x, "--idempotency-key must be 1 to 255 visible ASCII characters");
	else
		rc = cmd->run(&x);
	if (fflush(stdout) != 0 && rc == CTL_EXIT_OK) {
		perror("latticectl: standard output");
		rc = CTL_EXIT_FAILED;
	}
	ctl_client_free(&x.client);
	ctl_config_free(&x.cfg);
	return rc;
}
