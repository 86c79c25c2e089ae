/* ctl_config — where latticectl finds its servers, token and timeout.
 *
 * Each setting comes from the first of: a flag (--server, --token,
 * --timeout), the environment (LATTICE_SERVER, LATTICE_TOKEN,
 * LATTICE_TIMEOUT), the config file, the default (http://127.0.0.1:8080,
 * latticed's default --listen; no token; 30 s). The config file is --config
 * FILE, else $LATTICECTL_CONFIG, else ~/.config/lattice/config
 * ($XDG_CONFIG_HOME/lattice/config when that is set); the first two must
 * exist, the last may be missing. Its format (docs/latticectl.md):
 *
 *     # comment
 *     server = http://10.0.0.1:8080, http://10.0.0.2:8080
 *     token = ...
 *     timeout = 30s
 *
 * A server list is URLs separated by commas or spaces; "HOST:PORT" means
 * http://HOST:PORT. Pure but for reading the file: the environment comes
 * through a function, so tests can give their own. */
#ifndef LATTICE_CTL_CONFIG_H
#define LATTICE_CTL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CTL_DEFAULT_SERVER "http://127.0.0.1:8080"
#define CTL_DEFAULT_TIMEOUT_MS 30000
#define CTL_SERVERS_MAX 32

struct ctl_config {
	char *servers[CTL_SERVERS_MAX]; /* owned, normalised "http://HOST:PORT" */
	size_t nservers;
	char *token;                   /* owned; NULL: none */
	long long timeout_ms;
	/* Where each came from, for `latticectl config view` and messages. */
	char server_from[1100], token_from[1100], timeout_from[1100];
	char file[1024];               /* the config file looked at ("" none) */
	bool file_found;
	char warning[1200];            /* "" or something to tell the user */
};

/* What the command line said (NULL / 0: not given). */
struct ctl_config_flags {
	const char *const *servers; /* each may be a list */
	size_t nservers;
	const char *token;
	const char *timeout;
	const char *config;
};

typedef const char *(*ctl_getenv_fn)(const char *name);

/* Settings of one config file's text. Owned strings; NULL: not set. */
struct ctl_file_settings {
	char *server, *token, *timeout;
};

/* Parses a config file's text (name is for messages). 0, or -1 with err
 * naming the line: an unknown key, a line without '=', a key given twice. */
int ctl_config_parse_text(const char *text, const char *name, struct ctl_file_settings *fs, char *err, size_t errlen);
void ctl_file_settings_free(struct ctl_file_settings *fs);

/* Splits a server list into normalised URLs appended to c->servers. 0, or -1
 * with err (an https:// URL, a path, a bad port, too many). */
int ctl_config_add_servers(struct ctl_config *c, const char *list, char *err, size_t errlen);

/* A token must be visible ASCII without spaces (it goes into a header). */
bool ctl_token_valid(const char *t);

/* Resolves every setting (see the top). 0, or -1 with err. c is filled even
 * on failure enough for ctl_config_free. */
int ctl_config_resolve(struct ctl_config *c, const struct ctl_config_flags *fl, ctl_getenv_fn env, char *err,
		       size_t errlen);
void ctl_config_free(struct ctl_config *c);

#endif
