/* ctl_complete — the bash and zsh completion scripts, written from the command
 * tree so they know every command and flag latticectl has. Ids (nodes,
 * actors...) are completed by asking the lattice: `latticectl KIND list -o
 * name`, with the --server/--token/--config of the line being completed. zsh
 * runs the same function through bashcompinit. */
#include <stdio.h>
#include <string.h>

#include "ctl_cmd.h"
#include "ctl_ops.h"
#include "ctl_util.h"

/* The groups whose ids can be listed with `latticectl GROUP list -o name`. */
static bool is_kind(const char *s)
{
	static const char *const kinds[] = {"nodes", "actors", "providers", "links", "policies", "commands", "failovers"};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(s, kinds[i]) == 0)
			return true;
	return false;
}

/* How a value completes, as the script's helper reads it. */
static void spec(FILE *out, const char *complete)
{
	if (strcmp(complete, "file") == 0)
		fprintf(out, "file");
	else if (is_kind(complete))
		fprintf(out, "ids:%s", complete);
	else
		fprintf(out, "words:%s", complete);
}

typedef void (*visit_fn)(FILE *out, const struct ctl_cmd *c, const char *path);

static void walk(FILE *out, const struct ctl_cmd *c, const char *path, visit_fn fn)
{
	fn(out, c, path);
	for (const struct ctl_cmd *s = c->sub; s && s->name; s++) {
		char p[128];
		snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? " " : "", s->name);
		walk(out, s, p, fn);
	}
}

static void v_sub(FILE *out, const struct ctl_cmd *c, const char *path)
{
	if (!c->sub)
		return;
	fprintf(out, "\t\"%s\") echo \"", path);
	for (const struct ctl_cmd *s = c->sub; s->name; s++)
		fprintf(out, "%s%s", s == c->sub ? "" : " ", s->name);
	fprintf(out, "\" ;;\n");
}

static void v_default(FILE *out, const struct ctl_cmd *c, const char *path)
{
	if (c->sub && c->dflt)
		fprintf(out, "\t\"%s\") echo \"%s %s\" ;;\n", path, path, c->dflt);
}

static void flag_names(FILE *out, const struct ctl_flag *flags, bool values_only, const char *sep, bool *first)
{
	for (const struct ctl_flag *f = flags; f && f->name; f++) {
		if (values_only && !f->value)
			continue;
		fprintf(out, "%s--%s", *first ? "" : sep, f->name);
		*first = false;
		if (f->alias)
			fprintf(out, "%s--%s", sep, f->alias);
		if (f->short_name)
			fprintf(out, "%s-%c", sep, f->short_name);
	}
}

static void v_flags(FILE *out, const struct ctl_cmd *c, const char *path)
{
	if (!c->flags || !c->flags->name)
		return;
	bool first = true;
	fprintf(out, "\t\"%s\") echo \"", path);
	flag_names(out, c->flags, false, " ", &first);
	fprintf(out, "\" ;;\n");
}

/* Case labels "PATH --flag" (path NULL: any path, for the global flags). */
static void value_cases(FILE *out, const struct ctl_flag *flags, const char *path)
{
	for (const struct ctl_flag *f = flags; f && f->name; f++) {
		if (!f->value || !f->complete)
			continue;
		const char *star = path ? "" : "*";
		fprintf(out, "\t%s\"%s%s--%s\"", star, path ? path : "", " ", f->name);
		if (f->alias)
			fprintf(out, "|%s\"%s --%s\"", star, path ? path : "", f->alias);
		if (f->short_name)
			fprintf(out, "|%s\"%s -%c\"", star, path ? path : "", f->short_name);
		fprintf(out, ") echo \"");
		spec(out, f->complete);
		fprintf(out, "\" ;;\n");
	}
}

static void v_values(FILE *out, const struct ctl_cmd *c, const char *path)
{
	value_cases(out, c->flags, path);
}

static void v_args(FILE *out, const struct ctl_cmd *c, const char *path)
{
	if (c->sub || !c->complete)
		return;
	fprintf(out, "\t\"%s\") echo \"", path);
	spec(out, c->complete);
	fprintf(out, "\" ;;\n");
}

static void bash(FILE *out)
{
	fprintf(out, "# bash completion for latticectl (written by `latticectl completion bash`).\n"
		     "# Load it: source <(latticectl completion bash)\n\n");
	fprintf(out, "__latticectl_sub() { # PATH: its subcommands\n\tcase \"$1\" in\n");
	walk(out, &ctl_root, "", v_sub);
	fprintf(out, "\tesac\n}\n\n");

	fprintf(out, "__latticectl_default() { # a group's PATH: the command it runs alone\n\tcase \"$1\" in\n");
	walk(out, &ctl_root, "", v_default);
	fprintf(out, "\t*) echo \"$1\" ;;\n\tesac\n}\n\n");

	fprintf(out, "__latticectl_flags() { # PATH: its flags and the global ones\n\tlocal g=\"");
	bool first = true;
	flag_names(out, ctl_global_flags, false, " ", &first);
	fprintf(out, " --help -h\"\n\tcase \"$1\" in\n");
	walk(out, &ctl_root, "", v_flags);
	fprintf(out, "\tesac\n\techo \"$g\"\n}\n\n");

	fprintf(out, "__latticectl_takes_value() { # FLAG: 0 when it takes a value\n\tcase \"$1\" in\n\t");
	first = true;
	flag_names(out, ctl_global_flags, true, "|", &first);
	const struct ctl_cmd *stack[64];
	size_t n = 0;
	stack[n++] = &ctl_root;
	while (n > 0) { /* every command's value flags (a name may repeat: harmless in a case) */
		const struct ctl_cmd *c = stack[--n];
		flag_names(out, c->flags, true, "|", &first);
		for (const struct ctl_cmd *s = c->sub; s && s->name && n < 64; s++)
			stack[n++] = s;
	}
	fprintf(out, ") return 0 ;;\n\tesac\n\treturn 1\n}\n\n");

	fprintf(out, "__latticectl_value() { # \"PATH FLAG\": how its value completes\n\tcase \"$1\" in\n");
	walk(out, &ctl_root, "", v_values);
	value_cases(out, ctl_global_flags, NULL);
	fprintf(out, "\tesac\n}\n\n");

	fprintf(out, "__latticectl_args() { # PATH: how its arguments complete\n\tcase \"$1\" in\n");
	walk(out, &ctl_root, "", v_args);
	fprintf(out, "\tesac\n}\n\n");

	fprintf(out,
		"# SPEC WORD: COMPREPLY for a completion spec (file, ids:GROUP, words:LIST).\n"
		"__latticectl_complete() {\n"
		"\tlocal IFS=$' \\t\\n' ids\n"
		"\tcase \"$1\" in\n"
		"\tfile) COMPREPLY=($(compgen -f -- \"$2\")) ;;\n"
		"\tids:*)\n"
		"\t\tids=$(\"$__latticectl_prog\" \"${__latticectl_conn[@]}\" \"${1#ids:}\" list -o name --timeout 3s 2>/dev/null)\n"
		"\t\tids=$(printf '%%s\\n' \"$ids\" | sed 's|^[^/]*/||')\n"
		"\t\tCOMPREPLY=($(compgen -W \"$ids\" -- \"$2\")) ;;\n"
		"\twords:*) COMPREPLY=($(compgen -W \"${1#words:}\" -- \"$2\")) ;;\n"
		"\t*) COMPREPLY=() ;;\n"
		"\tesac\n"
		"}\n\n");

	fprintf(out,
		"_latticectl() {\n"
		"\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev= path= w i skip= sub\n"
		"\t__latticectl_prog=${COMP_WORDS[0]}\n"
		"\t__latticectl_conn=()\n"
		"\tCOMPREPLY=()\n"
		"\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
		"\t\tw=${COMP_WORDS[i]}\n"
		"\t\tif [[ -n $skip ]]; then skip=; continue; fi\n"
		"\t\tcase $w in\n"
		"\t\t--server | -s | --token | --config) __latticectl_conn+=(\"$w\" \"${COMP_WORDS[i + 1]}\"); skip=1; continue ;;\n"
		"\t\t--server=* | --token=* | --config=*) __latticectl_conn+=(\"$w\"); continue ;;\n"
		"\t\t-*) __latticectl_takes_value \"$w\" && skip=1; continue ;;\n"
		"\t\tesac\n"
		"\t\tsub=\" $(__latticectl_sub \"$path\") \"\n"
		"\t\tif [[ $sub != \"  \" && $sub == *\" $w \"* ]]; then path=${path:+$path }$w; fi\n"
		"\tdone\n"
		"\tif [[ -n $skip ]]; then # the word being completed is a flag's value\n"
		"\t\tprev=${COMP_WORDS[COMP_CWORD - 1]}\n"
		"\t\t__latticectl_complete \"$(__latticectl_value \"$(__latticectl_default \"$path\") $prev\")\" \"$cur\"\n"
		"\t\treturn 0\n"
		"\tfi\n"
		"\tsub=$(__latticectl_sub \"$path\")\n"
		"\tif [[ $cur == -* ]]; then\n"
		"\t\tCOMPREPLY=($(compgen -W \"$(__latticectl_flags \"$(__latticectl_default \"$path\")\")\" -- \"$cur\"))\n"
		"\telif [[ -n $sub ]]; then\n"
		"\t\tCOMPREPLY=($(compgen -W \"$sub\" -- \"$cur\"))\n"
		"\telse\n"
		"\t\t__latticectl_complete \"$(__latticectl_args \"$path\")\" \"$cur\"\n"
		"\tfi\n"
		"\treturn 0\n"
		"}\n\n"
		"complete -F _latticectl latticectl\n");
}

int ctl_complete_script(const char *shell, FILE *out)
{
	if (strcmp(shell, "bash") == 0) {
		bash(out);
		return 0;
	}
	if (strcmp(shell, "zsh") == 0) {
		fprintf(out, "# zsh completion for latticectl (written by `latticectl completion zsh`): the bash\n"
			     "# completion through zsh's bashcompinit. Load it: source <(latticectl completion zsh)\n"
			     "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit; }\n"
			     "autoload -U +X bashcompinit && bashcompinit\n\n");
		bash(out);
		return 0;
	}
	return -1;
}
