/* ctl_cmd — latticectl's command tree, its help, and running a command line.
 *
 * The tree (ctl_tree.c) is data: each command has its flags, its positional
 * arguments, its help and a run function (ctl_res.c for the resources,
 * ctl_ops.c for the rest). Help, the man page's list and the shell completion
 * (ctl_complete.c) all come from it, so none can miss a command. */
#ifndef LATTICE_CTL_CMD_H
#define LATTICE_CTL_CMD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "ctl_args.h"
#include "ctl_client.h"
#include "ctl_config.h"

enum ctl_output { CTL_OUT_TABLE, CTL_OUT_WIDE, CTL_OUT_JSON, CTL_OUT_NAME };

struct ctl_cmd;

/* What a run function gets. */
struct ctl_ctx {
	const struct ctl_cmd *cmd; /* the command being run */
	char path[128];            /* its words: "nodes cordon" */
	struct ctl_args args;      /* its positionals and flags */
	struct ctl_config cfg;
	struct ctl_client client;
	enum ctl_output out;
	bool headers;              /* not --no-headers */
	bool consistent;           /* --consistent: reads with consistent=true */
	time_t now;
	FILE *o;                   /* standard output */
};

struct ctl_cmd {
	const char *name;
	const char *summary;          /* one line, for lists */
	const char *usage;            /* what follows the words: "ID [flags]" */
	const char *help;             /* more: what it does, examples; NULL none */
	const struct ctl_flag *flags; /* its own flags (NULL-name ended), or NULL */
	int min_pos, max_pos;         /* positional arguments; max_pos -1: any number */
	int (*run)(struct ctl_ctx *x);
	const struct ctl_cmd *sub;    /* subcommands (NULL-name ended), or NULL */
	const char *dflt;             /* the subcommand run when none is named, or NULL */
	const void *data;             /* for the run function (a resource kind...) */
	const char *complete;         /* what positionals complete to: "nodes", "actors", a word list... */
};

/* The root of the tree and the global flags (ctl_tree.c). */
extern const struct ctl_cmd ctl_root;
extern const struct ctl_flag ctl_global_flags[];

/* Runs a command line (argv without the program name); returns the exit code. */
int ctl_main(int argc, char **argv);

/* The command argv names, and the indexes of the words naming it (so the rest
 * can be parsed). Stops at the first word that is not a subcommand. *unknown
 * is that word when the command reached has subcommands (an unknown command),
 * else NULL. When the words name a group and no more, the group's default is
 * returned and *group is the group (its --help is the group's); else NULL. */
const struct ctl_cmd *ctl_resolve(int argc, char **argv, int *word_idx, int *nwords, const char **unknown,
				  const struct ctl_cmd **group);

/* Prints cmd's help (path: its words) to out. */
void ctl_help(const struct ctl_cmd *cmd, const char *path, FILE *out);

/* For run functions: "error: ..." on stderr, returns CTL_EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) int ctl_usage_error(struct ctl_ctx *x, const char *fmt, ...);
/* Prints j as pretty JSON (2-space indent) and a newline. */
void ctl_print_json(struct ctl_ctx *x, const json_t *j);

#endif
