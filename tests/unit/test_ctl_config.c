/* test_ctl_config — latticectl's settings: the config file's format, server
 * lists, and the precedence flag > environment > config file > default for
 * each setting, with the environment given by the test (no real one read). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_config.h"
#include "tap.h"

/* The fake environment: NAME=VALUE strings. */
static const char *fake_env[16];

static const char *fenv(const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; fake_env[i]; i++)
		if (strncmp(fake_env[i], name, n) == 0 && fake_env[i][n] == '=')
			return fake_env[i] + n + 1;
	return NULL;
}

static void set_env(const char *a, const char *b, const char *c, const char *d)
{
	memset(fake_env, 0, sizeof(fake_env));
	fake_env[0] = a, fake_env[1] = b, fake_env[2] = c, fake_env[3] = d;
}

static char dir[256];

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static const char *servers(const struct ctl_config *c)
{
	static char out[1024];
	out[0] = '\0';
	for (size_t i = 0; i < c->nservers; i++)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? " " : "", c->servers[i]);
	return out;
}

int main(void)
{
	tap_plan(45);
	char err[1200];
	struct ctl_file_settings fs;

	/* ---- the file's format ---- */
	is_int(ctl_config_parse_text("# lattice\n\n  server = http://a:1, http://b:2  \ntoken=abc\r\ntimeout = 5s\n", "F", &fs,
				     err, sizeof(err)),
	       0, "a config file with a comment, spaces and a CRLF parses (%s)", err);
	is_str(fs.server, "http://a:1, http://b:2", "... server, trimmed");
	is_str(fs.token, "abc", "... token, without the CR");
	is_str(fs.timeout, "5s", "... timeout");
	ctl_file_settings_free(&fs);
	is_int(ctl_config_parse_text("server = x\nsevrer = y\n", "F", &fs, err, sizeof(err)), -1, "an unknown key is refused");
	is_str(err, "F:2: unknown key 'sevrer' (known: server, token, timeout)", "... naming the file, line and key");
	is_int(ctl_config_parse_text("token abc\n", "F", &fs, err, sizeof(err)), -1, "a line without '=' is refused");
	is_str(err, "F:1: want 'key = value'", "... saying what it wants");
	is_int(ctl_config_parse_text("token = a\ntoken = b\n", "F", &fs, err, sizeof(err)), -1, "a key given twice is refused");
	is_int(ctl_config_parse_text("token =\n", "F", &fs, err, sizeof(err)), -1, "a key without a value is refused");
	is_int(ctl_config_parse_text("", "F", &fs, err, sizeof(err)), 0, "an empty file is fine");
	ok(!fs.server && !fs.token && !fs.timeout, "... and sets nothing");

	/* ---- server lists ---- */
	struct ctl_config c = {0};
	is_int(ctl_config_add_servers(&c, "http://10.0.0.1:8080/, 10.0.0.2:8080 http://[::1]:8081,http://10.0.0.1:8080", err,
				      sizeof(err)),
	       0, "a server list with commas and spaces (%s)", err);
	is_str(servers(&c), "http://10.0.0.1:8080 http://10.0.0.2:8080 http://[::1]:8081",
	       "... normalised: http:// added, the trailing / dropped, a repeat tried once");
	ctl_config_free(&c);
	is_int(ctl_config_add_servers(&c, "https://a:1", err, sizeof(err)), -1, "https:// is refused");
	ok(strstr(err, "https is not supported") != NULL, "... saying why: %s", err);
	ctl_config_free(&c);
	is_int(ctl_config_add_servers(&c, "http://a:1/v1", err, sizeof(err)), -1, "a URL with a path is refused");
	ctl_config_free(&c);
	is_int(ctl_config_add_servers(&c, "http://a:99999", err, sizeof(err)), -1, "a port over 65535 is refused");
	ctl_config_free(&c);
	is_int(ctl_config_add_servers(&c, "http://a:", err, sizeof(err)), -1, "an empty port is refused");
	ctl_config_free(&c);
	is_int(ctl_config_add_servers(&c, " , ", err, sizeof(err)), -1, "an empty list is refused");
	ctl_config_free(&c);
	ok(ctl_token_valid("abc.DEF-123_~+/=") && !ctl_token_valid("a b") && !ctl_token_valid("a\nb") && !ctl_token_valid(""),
	   "tokens: visible ASCII only (no space, newline, or nothing)");

	/* ---- precedence ---- */
	snprintf(dir, sizeof(dir), "/tmp/test_ctl_config.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	char file[400], home[400], homefile[500], xdg[400];
	snprintf(file, sizeof(file), "%s/config", dir);
	write_file(file, "server = http://file:1\ntoken = filetoken\ntimeout = 7s\n", 0600);
	snprintf(home, sizeof(home), "%s/home", dir);
	snprintf(homefile, sizeof(homefile), "%s/.config", home);
	mkdir(home, 0700);
	mkdir(homefile, 0700);
	snprintf(homefile, sizeof(homefile), "%s/.config/lattice", home);
	mkdir(homefile, 0700);
	snprintf(homefile, sizeof(homefile), "%s/.config/lattice/config", home);
	char hv[450], cv[450];
	snprintf(hv, sizeof(hv), "HOME=%s", home);
	snprintf(cv, sizeof(cv), "LATTICECTL_CONFIG=%s", file);

	/* nothing anywhere: the defaults */
	struct ctl_config_flags none = {0};
	set_env(hv, NULL, NULL, NULL);
	is_int(ctl_config_resolve(&c, &none, fenv, err, sizeof(err)), 0, "no flag, env or file: resolves (%s)", err);
	ok(strcmp(servers(&c), "http://127.0.0.1:8080") == 0 && !c.token && c.timeout_ms == 30000 && !c.file_found,
	   "... to the defaults: 127.0.0.1:8080, no token, 30 s, no file");
	is_str(c.server_from, "default", "... from 'default'");
	ctl_config_free(&c);

	/* the file named by LATTICECTL_CONFIG */
	set_env(hv, cv, NULL, NULL);
	is_int(ctl_config_resolve(&c, &none, fenv, err, sizeof(err)), 0, "LATTICECTL_CONFIG names the file (%s)", err);
	ok(strcmp(servers(&c), "http://file:1") == 0 && c.token && strcmp(c.token, "filetoken") == 0 && c.timeout_ms == 7000,
	   "... its server, token and timeout are used");
	ok(strncmp(c.server_from, "config file ", 12) == 0 && strncmp(c.token_from, "config file ", 12) == 0,
	   "... and said to come from it (%s)", c.server_from);
	ctl_config_free(&c);

	/* the environment beats the file */
	set_env(hv, cv, "LATTICE_SERVER=http://env:2,http://env:3", "LATTICE_TOKEN=envtoken");
	is_int(ctl_config_resolve(&c, &none, fenv, err, sizeof(err)), 0, "environment and file (%s)", err);
	ok(strcmp(servers(&c), "http://env:2 http://env:3") == 0 && strcmp(c.token, "envtoken") == 0 && c.timeout_ms == 7000,
	   "... LATTICE_SERVER and LATTICE_TOKEN win; the timeout still comes from the file");
	ctl_config_free(&c);

	/* flags beat both */
	const char *fs_list[] = {"http://flag:4", "http://flag:5,http://flag:6"};
	struct ctl_config_flags fl = {.servers = fs_list, .nservers = 2, .token = "flagtoken", .timeout = "500ms"};
	is_int(ctl_config_resolve(&c, &fl, fenv, err, sizeof(err)), 0, "flags, environment and file (%s)", err);
	ok(strcmp(servers(&c), "http://flag:4 http://flag:5 http://flag:6") == 0 && strcmp(c.token, "flagtoken") == 0 &&
		   c.timeout_ms == 500,
	   "... the flags win, each --server adding to the list");
	is_str(c.token_from, "flag --token", "... from 'flag --token'");
	ctl_config_free(&c);

	/* --config beats LATTICECTL_CONFIG; a named file must exist */
	struct ctl_config_flags missing = {.config = "/nonexistent/lattice/config"};
	is_int(ctl_config_resolve(&c, &missing, fenv, err, sizeof(err)), -1, "--config naming a missing file is an error");
	ok(strstr(err, "/nonexistent/lattice/config") != NULL, "... naming it: %s", err);
	ctl_config_free(&c);

	/* the default file: $HOME/.config/lattice/config, or under $XDG_CONFIG_HOME */
	write_file(homefile, "server = http://home:7\n", 0644);
	set_env(hv, NULL, NULL, NULL);
	is_int(ctl_config_resolve(&c, &none, fenv, err, sizeof(err)), 0, "the default file is read when there (%s)", err);
	is_str(servers(&c), "http://home:7", "... ~/.config/lattice/config");
	ok(c.warning[0] == '\0', "... no warning for a readable file without a token");
	ctl_config_free(&c);
	char xv[450];
	snprintf(xdg, sizeof(xdg), "%s/xdg", dir);
	snprintf(xv, sizeof(xv), "XDG_CONFIG_HOME=%s", xdg);
	set_env(hv, xv, NULL, NULL);
	is_int(ctl_config_resolve(&c, &none, fenv, err, sizeof(err)), 0, "$XDG_CONFIG_HOME without a file: fine (%s)", err);
	is_str(servers(&c), "http://127.0.0.1:8080", "... the default server (XDG_CONFIG_HOME wins over HOME)");
	ctl_config_free(&c);

	/* a token others can read: a warning */
	write_file(homefile, "token = t0k\n", 0644);
	set_env(hv, NULL, NULL, NULL);
	is_int(ctl_config_resolve(&c, &none, fenv, err, sizeof(err)), 0, "a token in a world-readable file resolves");
	ok(strstr(c.warning, "readable by others") != NULL, "... with a warning: %s", c.warning);
	ctl_config_free(&c);

	/* bad values, wherever they come from, name their source */
	set_env(hv, "LATTICE_TIMEOUT=soon", NULL, NULL);
	is_int(ctl_config_resolve(&c, &none, fenv, err, sizeof(err)), -1, "a bad LATTICE_TIMEOUT is refused");
	ok(strstr(err, "environment LATTICE_TIMEOUT") != NULL, "... naming it: %s", err);
	ctl_config_free(&c);
	write_file(file, "server = https://x:1\n", 0600);
	set_env(hv, cv, NULL, NULL);
	is_int(ctl_config_resolve(&c, &none, fenv, err, sizeof(err)), -1, "a bad server in the file is refused");
	ok(strstr(err, file) != NULL, "... naming the file: %s", err);
	ctl_config_free(&c);

	unlink(file);
	unlink(homefile);
	snprintf(homefile, sizeof(homefile), "rm -rf '%s'", dir);
	if (system(homefile) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
