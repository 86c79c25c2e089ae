/* hist — see hist.h. */
#include "hist.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hist {
	FILE *f;
	pthread_mutex_t mu;
	struct timespec t0;
	atomic_uint_fast64_t errors;
};

struct hist *hist_open(const char *path, char *err, size_t errlen)
{
	struct hist *h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!(h->f = fopen(path, "w"))) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(h);
		return NULL;
	}
	pthread_mutex_init(&h->mu, NULL);
	clock_gettime(CLOCK_MONOTONIC, &h->t0);
	return h;
}

int64_t hist_now(const struct hist *h)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)(t.tv_sec - h->t0.tv_sec) * 1000 + (t.tv_nsec - h->t0.tv_nsec) / 1000000;
}

int hist_write(struct hist *h, json_t *obj)
{
	/* "t" first so a person (or grep) reads the history in time order. */
	json_t *line = json_object();
	json_t *t = json_object_get(obj, "t");
	int rc = -1;
	if (line && json_object_set_new(line, "t", json_is_integer(t) ? json_incref(t) : json_integer(hist_now(h))) == 0) {
		const char *k;
		json_t *v;
		rc = 0;
		json_object_foreach(obj, k, v) if (strcmp(k, "t") != 0 && json_object_set(line, k, v) < 0) rc = -1;
	}
	char *s = rc == 0 ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
	json_decref(line);
	rc = -1;
	if (s) {
		pthread_mutex_lock(&h->mu);
		if (fputs(s, h->f) >= 0 && fputc('\n', h->f) != EOF && fflush(h->f) == 0)
			rc = 0;
		pthread_mutex_unlock(&h->mu);
		free(s);
	}
	if (rc < 0)
		atomic_fetch_add(&h->errors, 1);
	return rc;
}

int hist_writen(struct hist *h, json_t *obj)
{
	if (!obj) {
		atomic_fetch_add(&h->errors, 1);
		return -1;
	}
	int rc = hist_write(h, obj);
	json_decref(obj);
	return rc;
}

uint64_t hist_errors(const struct hist *h)
{
	return atomic_load(&((struct hist *)h)->errors);
}

void hist_close(struct hist *h)
{
	if (!h)
		return;
	if (fclose(h->f) != 0)
		atomic_fetch_add(&h->errors, 1);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

struct tline {
	json_int_t t;
	size_t n;
	json_t *obj;
};

static int cmp_tline(const void *a, const void *b)
{
	const struct tline *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->n < y->n ? -1 : x->n > y->n;
}

int hist_load(const char *path, json_t **out, char *err, size_t errlen)
{
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct tline *v = NULL;
	size_t n = 0, cap = 0, lineno = 0;
	char *buf = NULL;
	size_t bcap = 0;
	ssize_t len;
	int rc = 0;
	while ((len = getline(&buf, &bcap, f)) >= 0) {
		lineno++;
		if (len == 0 || (len == 1 && buf[0] == '\n'))
			continue;
		json_error_t je;
		json_t *o = json_loadb(buf, (size_t)len, JSON_REJECT_DUPLICATES, &je);
		json_t *t = o ? json_object_get(o, "t") : NULL;
		if (!o || !json_is_object(o) || !json_is_integer(t)) {
			snprintf(err, errlen, "%s: line %zu: %s", path, lineno,
				 !o ? je.text : "want a JSON object with an integer \"t\"");
			json_decref(o);
			rc = -1;
			break;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 1024;
			struct tline *nv = realloc(v, nc * sizeof(*v));
			if (!nv) {
				snprintf(err, errlen, "out of memory");
				json_decref(o);
				rc = -1;
				break;
			}
			v = nv;
			cap = nc;
		}
		v[n++] = (struct tline){json_integer_value(t), lineno, o};
	}
	free(buf);
	fclose(f);
	json_t *arr = rc == 0 ? json_array() : NULL;
	if (rc == 0 && !arr) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
	}
	if (rc == 0 && n > 0) /* an empty history: v is NULL, which qsort must not get (UBSan) */
		qsort(v, n, sizeof(*v), cmp_tline);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && json_array_append_new(arr, v[i].obj) < 0) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
			continue;
		}
		if (rc != 0)
			json_decref(v[i].obj);
	}
	free(v);
	if (rc != 0) {
		json_decref(arr);
		return -1;
	}
	*out = arr;
	return 0;
}
