/* ctl_args — see ctl_args.h. */
#include "ctl_args.h"

#include <stdio.h>
#include <string.h>

const struct ctl_flag *ctl_flag_find(const struct ctl_flag *const *tables, size_t ntables, const char *name)
{
	for (size_t t = 0; t < ntables; t++)
		for (const struct ctl_flag *f = tables[t]; f && f->name; f++)
			if (strcmp(f->name, name) == 0 || (f->alias && strcmp(f->alias, name) == 0))
				return f;
	return NULL;
}

static const struct ctl_flag *find_short(const struct ctl_flag *const *tables, size_t ntables, char c)
{
	for (size_t t = 0; t < ntables; t++)
		for (const struct ctl_flag *f = tables[t]; f && f->name; f++)
			if (f->short_name == c)
				return f;
	return NULL;
}

static int add_flag(struct ctl_args *out, const struct ctl_flag *f, const char *value, const char *spelled, char *err,
		    size_t errlen)
{
	if (!f->repeat && f->value) { /* a switch given twice (-v -v) is still on */
		for (int i = 0; i < out->nflags; i++)
			if (out->flags[i].flag == f) {
				snprintf(err, errlen, "flag %s given more than once", spelled);
				return -1;
			}
	}
	if (out->nflags >= CTL_ARGS_MAX) {
		snprintf(err, errlen, "too many flags (at most %d)", CTL_ARGS_MAX);
		return -1;
	}
	out->flags[out->nflags].flag = f;
	out->flags[out->nflags].value = value;
	out->nflags++;
	return 0;
}

int ctl_args_parse(int argc, char **argv, const struct ctl_flag *const *tables, size_t ntables, struct ctl_args *out,
		   char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	bool flags_done = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (flags_done || a[0] != '-' || strcmp(a, "-") == 0) { /* "-" is a positional (standard input) */
			if (out->npos >= CTL_ARGS_MAX) {
				snprintf(err, errlen, "too many arguments (at most %d)", CTL_ARGS_MAX);
				return -1;
			}
			out->pos[out->npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			flags_done = true;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			out->help = true;
			continue;
		}
		const struct ctl_flag *f;
		const char *value = NULL;
		char spelled[80];
		if (a[1] == '-') { /* --name or --name=value */
			const char *eq = strchr(a + 2, '=');
			size_t nl = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
			char name[64];
			if (nl == 0 || nl >= sizeof(name)) {
				snprintf(err, errlen, "unknown flag %.60s", a);
				return -1;
			}
			memcpy(name, a + 2, nl);
			name[nl] = '\0';
			snprintf(spelled, sizeof(spelled), "--%s", name);
			f = ctl_flag_find(tables, ntables, name);
			if (!f) {
				snprintf(err, errlen, "unknown flag %s", spelled);
				return -1;
			}
			if (eq) {
				if (!f->value) {
					snprintf(err, errlen, "flag %s takes no value", spelled);
					return -1;
				}
				value = eq + 1;
			}
		} else { /* -x, -xVALUE */
			f = find_short(tables, ntables, a[1]);
			snprintf(spelled, sizeof(spelled), "-%c", a[1]);
			if (!f) {
				snprintf(err, errlen, "unknown flag %.60s", a);
				return -1;
			}
			if (a[2] != '\0') {
				if (!f->value) {
					snprintf(err, errlen, "unknown flag %.60s (flag %s takes no value)", a, spelled);
					return -1;
				}
				value = a + 2;
			}
		}
		if (f->value && value == NULL) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "flag %s needs a value (%s)", spelled, f->metavar ? f->metavar : "VALUE");
				return -1;
			}
			value = argv[++i];
		}
		if (add_flag(out, f, f->value ? value : NULL, spelled, err, errlen) != 0)
			return -1;
	}
	return 0;
}

static bool is(const struct ctl_flag *f, const char *name)
{
	return strcmp(f->name, name) == 0;
}

const char *ctl_args_get(const struct ctl_args *a, const char *name)
{
	for (int i = a->nflags - 1; i >= 0; i--)
		if (is(a->flags[i].flag, name))
			return a->flags[i].value ? a->flags[i].value : "";
	return NULL;
}

bool ctl_args_has(const struct ctl_args *a, const char *name)
{
	return ctl_args_get(a, name) != NULL;
}

size_t ctl_args_all(const struct ctl_args *a, const char *name, const char **out, size_t max)
{
	size_t n = 0;
	for (int i = 0; i < a->nflags && n < max; i++)
		if (is(a->flags[i].flag, name))
			out[n++] = a->flags[i].value ? a->flags[i].value : "";
	return n;
}
