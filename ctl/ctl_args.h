/* ctl_args — latticectl's argv parser: flags anywhere among the positional
 * arguments (kubectl style), "--name value", "--name=value", "-x value",
 * "-xvalue", "--" ending the flags. Pure: no output, no exit.
 *
 * Flags are described by tables (struct ctl_flag arrays ending with a NULL
 * name); the parsed result points into argv and into those tables, so both
 * must outlive it. */
#ifndef LATTICE_CTL_ARGS_H
#define LATTICE_CTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>

struct ctl_flag {
	const char *name;    /* long name, without "--"; NULL ends a table */
	char short_name;     /* 0: none */
	bool value;          /* takes a value */
	bool repeat;         /* may be given more than once (every value is kept) */
	const char *metavar; /* for help: "N", "FILE"... */
	const char *help;
	const char *alias;   /* another long name for it, or NULL */
	const char *complete; /* what its value completes to in the shell: "nodes",
				* "actors", "file", a word list "json wide" ...; NULL none */
	const char *field;   /* what it sets for the command (ctl_res.c): a request body
			      * member ("selector.regions") or a query parameter */
	char ftype;          /* of that: 's' string, 'i' integer, 'l' list of strings,
			      * 'm' map of KEY=VALUE, 'q' query parameter; 0 none */
};

#define CTL_ARGS_MAX 128

struct ctl_args {
	const char *pos[CTL_ARGS_MAX];
	int npos;
	struct {
		const struct ctl_flag *flag;
		const char *value; /* NULL for a flag without a value */
	} flags[CTL_ARGS_MAX];
	int nflags;
	bool help; /* -h or --help was given (before "--") */
};

/* Looks a flag up by long name (or alias) in tables[0..ntables). NULL if none. */
const struct ctl_flag *ctl_flag_find(const struct ctl_flag *const *tables, size_t ntables, const char *name);

/* Parses argv[0..argc). 0, or -1 with err saying what is wrong (an unknown
 * flag, a missing value, a flag given twice that cannot be, too many). */
int ctl_args_parse(int argc, char **argv, const struct ctl_flag *const *tables, size_t ntables, struct ctl_args *out,
		   char *err, size_t errlen);

/* The value of a flag given by long name: the last one given, "" for a flag
 * without a value, NULL when it was not given. */
const char *ctl_args_get(const struct ctl_args *a, const char *name);
bool ctl_args_has(const struct ctl_args *a, const char *name);
/* Every value of a (repeatable) flag in order, up to max; returns how many. */
size_t ctl_args_all(const struct ctl_args *a, const char *name, const char **out, size_t max);

#endif
