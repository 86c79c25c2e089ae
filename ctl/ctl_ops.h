/* ctl_ops — the commands that are not a resource's list/get/create: the Raft
 * group (cluster ...), health, metrics and the lattice's counts (summary), the
 * placement dry run (plan), the event log (events, --watch), the chaos report,
 * the configuration in effect, shell completion and the version. */
#ifndef LATTICE_CTL_OPS_H
#define LATTICE_CTL_OPS_H

#include "ctl_cmd.h"

int ctl_run_cluster_status(struct ctl_ctx *x);
int ctl_run_cluster_members(struct ctl_ctx *x);
int ctl_run_cluster_add(struct ctl_ctx *x);
int ctl_run_cluster_remove(struct ctl_ctx *x);
int ctl_run_cluster_transfer(struct ctl_ctx *x);
int ctl_run_cluster_read_index(struct ctl_ctx *x);
int ctl_run_health(struct ctl_ctx *x);
int ctl_run_metrics(struct ctl_ctx *x);
int ctl_run_summary(struct ctl_ctx *x);
int ctl_run_plan(struct ctl_ctx *x);
int ctl_run_events(struct ctl_ctx *x);
int ctl_run_chaos_report(struct ctl_ctx *x);
int ctl_run_chaos_timeline(struct ctl_ctx *x);
int ctl_run_config_view(struct ctl_ctx *x);
int ctl_run_completion(struct ctl_ctx *x);
int ctl_run_version(struct ctl_ctx *x);
int ctl_run_help(struct ctl_ctx *x);

/* Writes the completion script for shell ("bash" or "zsh") to out. 0, or -1
 * for another shell. (ctl_complete.c) */
int ctl_complete_script(const char *shell, FILE *out);

#endif
