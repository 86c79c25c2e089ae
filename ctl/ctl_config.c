/* ctl_config — see ctl_config.h. */
#include "ctl_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl_util.h"

#define CONFIG_FILE_MAX (64 * 1024)

void ctl_file_settings_free(struct ctl_file_settings *fs)
{
	free(fs->server);
	free(fs->token);
	free(fs->timeout);
	memset(fs, 0, sizeof(*fs));
}

static const char *trim(const char *s, size_t *n)
{
	while (*n > 0 && (*s == ' ' || *s == '\t'))
		s++, (*n)--;
	while (*n > 0 && (s[*n - 1] == ' ' || s[*n - 1] == '\t' || s[*n - 1] == '\r'))
		(*n)--;
	return s;
}

int ctl_config_parse_text(const char *text, const char *name, struct ctl_file_settings *fs, char *err, size_t errlen)
{
	memset(fs, 0, sizeof(*fs));
	int lineno = 0;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		lineno++;
		char *line = ctl_xstrndup(p, n);
		p += n + (nl ? 1 : 0);
		size_t ln = n;
		const char *s = trim(line, &ln);
		if (ln == 0 || s[0] == '#') {
			free(line);
			continue;
		}
		const char *eq = memchr(s, '=', ln);
		if (!eq) {
			snprintf(err, errlen, "%s:%d: want 'key = value'", name, lineno);
			free(line);
			ctl_file_settings_free(fs);
			return -1;
		}
		size_t kl = (size_t)(eq - s), vl = ln - kl - 1;
		const char *k = trim(s, &kl);
		const char *v = trim(eq + 1, &vl);
		char **slot = NULL;
		if (kl == 6 && memcmp(k, "server", 6) == 0)
			slot = &fs->server;
		else if (kl == 5 && memcmp(k, "token", 5) == 0)
			slot = &fs->token;
		else if (kl == 7 && memcmp(k, "timeout", 7) == 0)
			slot = &fs->timeout;
		if (!slot) {
			snprintf(err, errlen, "%s:%d: unknown key '%.*s' (known: server, token, timeout)", name, lineno,
				 (int)(kl > 40 ? 40 : kl), k);
		} else if (*slot) {
			snprintf(err, errlen, "%s:%d: '%.*s' is set twice", name, lineno, (int)kl, k);
		} else if (vl == 0) {
			snprintf(err, errlen, "%s:%d: '%.*s' has no value", name, lineno, (int)kl, k);
		} else {
			*slot = ctl_xstrndup(v, vl);
			free(line);
			continue;
		}
		free(line);
		ctl_file_settings_free(fs);
		return -1;
	}
	return 0;
}

/* One server: "http://HOST[:PORT][/]" or "HOST:PORT"; normalised. */
static int add_one(struct ctl_config *c, const char *s, size_t n, char *err, size_t errlen)
{
	char *u = ctl_xstrndup(s, n);
	const char *rest = u;
	if (strncmp(u, "https://", 8) == 0) {
		snprintf(err, errlen, "server '%s': https is not supported (latticed serves plain HTTP; see docs/latticectl.md)",
			 u);
		free(u);
		return -1;
	}
	if (strncmp(u, "http://", 7) == 0)
		rest = u + 7;
	else if (strstr(u, "://")) {
		snprintf(err, errlen, "server '%s': want http://HOST:PORT", u);
		free(u);
		return -1;
	}
	size_t rl = strlen(rest);
	if (rl > 0 && rest[rl - 1] == '/')
		rl--;
	/* host: a name, an IPv4 literal, or [IPv6] */
	const char *h = rest, *he;
	if (*h == '[') {
		he = memchr(h, ']', rl);
		he = he ? he + 1 : NULL;
	} else {
		he = h + strcspn(h, ":/");
		if ((size_t)(he - h) > rl)
			he = h + rl;
	}
	bool good = he && he > h + (*h == '[' ? 2 : 0);
	for (const char *q = h; good && q < he; q++)
		good = *q > 0x20 && *q < 0x7f && *q != '@' && *q != '?' && *q != '#';
	const char *pe = rest + rl;
	if (good && he < pe) {
		long long port;
		char ps[8];
		size_t pl = (size_t)(pe - he - 1);
		good = *he == ':' && pl > 0 && pl < sizeof(ps);
		if (good) {
			memcpy(ps, he + 1, pl);
			ps[pl] = '\0';
			good = ctl_parse_int(ps, 1, 65535, &port) == 0;
		}
	}
	if (!good) {
		snprintf(err, errlen, "server '%s': want http://HOST:PORT (no path)", u);
		free(u);
		return -1;
	}
	if (c->nservers >= CTL_SERVERS_MAX) {
		snprintf(err, errlen, "more than %d servers", CTL_SERVERS_MAX);
		free(u);
		return -1;
	}
	struct ctl_buf b = {0};
	ctl_buf_printf(&b, "http://%.*s", (int)rl, rest);
	free(u);
	for (size_t i = 0; i < c->nservers; i++) /* the same one twice is tried once */
		if (strcmp(c->servers[i], b.s) == 0) {
			ctl_buf_free(&b);
			return 0;
		}
	c->servers[c->nservers++] = b.s;
	return 0;
}

int ctl_config_add_servers(struct ctl_config *c, const char *list, char *err, size_t errlen)
{
	size_t before = c->nservers;
	for (const char *p = list; *p;) {
		p += strspn(p, ", \t\n");
		size_t n = strcspn(p, ", \t\n");
		if (n == 0)
			break;
		if (add_one(c, p, n, err, errlen) != 0)
			return -1;
		p += n;
	}
	if (c->nservers == before) {
		snprintf(err, errlen, "an empty server list");
		return -1;
	}
	return 0;
}

bool ctl_token_valid(const char *t)
{
	if (!t || !*t || strlen(t) > 4096)
		return false;
	for (; *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return false;
	return true;
}

static void free_servers(struct ctl_config *c)
{
	for (size_t i = 0; i < c->nservers; i++)
		free(c->servers[i]);
	c->nservers = 0;
}

void ctl_config_free(struct ctl_config *c)
{
	free_servers(c);
	free(c->token);
	c->token = NULL;
}

/* The config file: its path and where that came from. */
static void config_path(struct ctl_config *c, const struct ctl_config_flags *fl, ctl_getenv_fn env, bool *must)
{
	const char *e;
	*must = true;
	if (fl->config) {
		snprintf(c->file, sizeof(c->file), "%s", fl->config);
	} else if ((e = env("LATTICECTL_CONFIG")) && *e) {
		snprintf(c->file, sizeof(c->file), "%s", e);
	} else {
		*must = false;
		if ((e = env("XDG_CONFIG_HOME")) && *e)
			snprintf(c->file, sizeof(c->file), "%s/lattice/config", e);
		else if ((e = env("HOME")) && *e)
			snprintf(c->file, sizeof(c->file), "%s/.config/lattice/config", e);
		else
			c->file[0] = '\0';
	}
}

int ctl_config_resolve(struct ctl_config *c, const struct ctl_config_flags *fl, ctl_getenv_fn env, char *err,
		       size_t errlen)
{
	memset(c, 0, sizeof(*c));
	struct ctl_file_settings fs = {0};
	bool must;
	config_path(c, fl, env, &must);
	if (c->file[0]) {
		char ferr[300];
		size_t len;
		struct stat st;
		int sr = stat(c->file, &st);
		if (!must && sr != 0 && errno == ENOENT) {
			/* the default file is optional */
		} else {
			char *text = ctl_read_file(c->file, CONFIG_FILE_MAX, &len, ferr, sizeof(ferr));
			if (!text) {
				snprintf(err, errlen, "config file: %s", ferr);
				return -1;
			}
			if (strlen(text) != len) {
				snprintf(err, errlen, "config file %s holds a NUL byte", c->file);
				free(text);
				return -1;
			}
			int rc = ctl_config_parse_text(text, c->file, &fs, err, errlen);
			free(text);
			if (rc != 0)
				return -1;
			c->file_found = true;
			/* as ssh does for keys: a token others can read is not a secret */
			if (fs.token && sr == 0 && S_ISREG(st.st_mode) && (st.st_mode & (S_IRWXG | S_IRWXO)))
				snprintf(c->warning, sizeof(c->warning),
					 "config file %s holds a token and is readable by others (chmod 600 it)", c->file);
		}
	}
	char fromfile[1100];
	snprintf(fromfile, sizeof(fromfile), "config file %s", c->file);
	int rc = -1;
	const char *e;

	/* servers */
	if (fl->nservers > 0) {
		for (size_t i = 0; i < fl->nservers; i++)
			if (ctl_config_add_servers(c, fl->servers[i], err, errlen) != 0)
				goto out;
		snprintf(c->server_from, sizeof(c->server_from), "flag --server");
	} else if ((e = env("LATTICE_SERVER")) && *e) {
		if (ctl_config_add_servers(c, e, err, errlen) != 0)
			goto out;
		snprintf(c->server_from, sizeof(c->server_from), "environment LATTICE_SERVER");
	} else if (fs.server) {
		if (ctl_config_add_servers(c, fs.server, err, errlen) != 0)
			goto prefix_file;
		snprintf(c->server_from, sizeof(c->server_from), "%s", fromfile);
	} else {
		c->servers[c->nservers++] = ctl_xstrdup(CTL_DEFAULT_SERVER);
		snprintf(c->server_from, sizeof(c->server_from), "default");
	}

	/* token */
	const char *tok = NULL;
	if (fl->token) {
		tok = fl->token;
		snprintf(c->token_from, sizeof(c->token_from), "flag --token");
	} else if ((e = env("LATTICE_TOKEN")) && *e) {
		tok = e;
		snprintf(c->token_from, sizeof(c->token_from), "environment LATTICE_TOKEN");
	} else if (fs.token) {
		tok = fs.token;
		snprintf(c->token_from, sizeof(c->token_from), "%s", fromfile);
	} else {
		snprintf(c->token_from, sizeof(c->token_from), "none");
	}
	if (tok) {
		if (!ctl_token_valid(tok)) {
			snprintf(err, errlen, "the token from %s is not 1 to 4096 visible ASCII characters without spaces",
				 c->token_from);
			goto out;
		}
		c->token = ctl_xstrdup(tok);
	}

	/* timeout */
	const char *to = NULL;
	if (fl->timeout) {
		to = fl->timeout;
		snprintf(c->timeout_from, sizeof(c->timeout_from), "flag --timeout");
	} else if ((e = env("LATTICE_TIMEOUT")) && *e) {
		to = e;
		snprintf(c->timeout_from, sizeof(c->timeout_from), "environment LATTICE_TIMEOUT");
	} else if (fs.timeout) {
		to = fs.timeout;
		snprintf(c->timeout_from, sizeof(c->timeout_from), "%s", fromfile);
	} else {
		snprintf(c->timeout_from, sizeof(c->timeout_from), "default");
	}
	c->timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
	if (to && ctl_parse_duration(to, &c->timeout_ms) != 0) {
		snprintf(err, errlen, "the timeout '%.40s' from %s is not a duration such as 30s, 500ms or 2m (at most 24h)",
			 to, c->timeout_from);
		goto out;
	}
	rc = 0;
	goto out;
prefix_file: {
	char tmp[400];
	snprintf(tmp, sizeof(tmp), "%s", err);
	snprintf(err, errlen, "config file %s: %s", c->file, tmp);
}
out:
	ctl_file_settings_free(&fs);
	return rc;
}
