/* The sim driver: actors are counters, computed from time rather than ticked,
 * so an idle agent costs nothing and thousands fit in one process. */
#include "driver.h"
#include "hmap.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_TICK_MS 100

struct sim_actor {
	char *key; /* "<actor_id>\x1f<instance>": the map's key */
	char *actor_id;
	long long instance;
	long long cpu, mem;
	char *config;
	long long base;     /* count at started */
	int64_t started;    /* now at start (or at restore) */
	long long version;  /* state_version of the last snapshot */
	long long snap_count; /* count in that snapshot (-1: none yet) */
};

struct sim_driver {
	struct driver d;
	struct hmap actors;
};

static char *make_key(const char *actor_id, long long instance)
{
	size_t n = strlen(actor_id) + 24;
	char *k = malloc(n);
	if (k)
		snprintf(k, n, "%s\x1f%lld", actor_id, instance);
	return k;
}

static struct sim_actor *lookup(struct sim_driver *s, const char *actor_id, long long instance)
{
	char buf[512];
	if (strlen(actor_id) + 24 > sizeof(buf)) {
		char *k = make_key(actor_id, instance);
		struct sim_actor *a = k ? hmap_get(&s->actors, k) : NULL;
		free(k);
		return a;
	}
	snprintf(buf, sizeof(buf), "%s\x1f%lld", actor_id, instance);
	return hmap_get(&s->actors, buf);
}

static long long count_at(const struct sim_actor *a, int64_t now)
{
	return a->base + (now > a->started ? (now - a->started) / SIM_TICK_MS : 0);
}

static void actor_free(struct sim_actor *a)
{
	if (!a)
		return;
	free(a->key);
	free(a->actor_id);
	free(a->config);
	free(a);
}

/* {"count":N} from a snapshot's base64; "" is a fresh counter. */
static int parse_state(const char *data, long long *count, char *err, size_t errlen)
{
	*count = 0;
	if (!data || !*data)
		return 0;
	size_t len;
	unsigned char *raw = driver_b64_decode(data, &len);
	if (!raw) {
		snprintf(err, errlen, "snapshot data is not base64");
		return -1;
	}
	json_error_t je;
	json_t *j = json_loadb((const char *)raw, len, 0, &je);
	free(raw);
	json_t *c = j ? json_object_get(j, "count") : NULL;
	if (!json_is_integer(c) || json_integer_value(c) < 0) {
		snprintf(err, errlen, "snapshot data is not a sim actor's state {\"count\":N}");
		json_decref(j);
		return -1;
	}
	*count = json_integer_value(c);
	json_decref(j);
	return 0;
}

static int sim_start(struct driver *d, const struct driver_actor *spec, const struct driver_snapshot *snap,
		     int64_t now, char *err, size_t errlen)
{
	struct sim_driver *s = (struct sim_driver *)d;
	long long count = 0;
	if (snap && parse_state(snap->data, &count, err, errlen) < 0)
		return -1;
	struct sim_actor *a = calloc(1, sizeof(*a));
	if (!a || !(a->key = make_key(spec->actor_id, spec->instance)) || !(a->actor_id = strdup(spec->actor_id)) ||
	    !(a->config = strdup(spec->config_json))) {
		actor_free(a);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->instance = spec->instance;
	a->cpu = spec->cpu_required;
	a->mem = spec->memory_required_mb;
	a->base = count;
	a->started = now;
	a->version = snap ? snap->state_version : 0;
	a->snap_count = snap ? count : -1;
	struct sim_actor *old = hmap_get(&s->actors, a->key);
	if (hmap_put(&s->actors, a->key, a) < 0) {
		actor_free(a);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	actor_free(old); /* the caller checks find first; never leak if it did not */
	return 0;
}

static int sim_stop(struct driver *d, const char *actor_id, long long instance, int64_t now)
{
	struct sim_driver *s = (struct sim_driver *)d;
	struct sim_actor *a = lookup(s, actor_id, instance);
	if (!a)
		return 1;
	hmap_del(&s->actors, a->key);
	actor_free(a);
	return 0;
}

static int sim_config(struct driver *d, const struct driver_actor *spec, int64_t now)
{
	struct sim_driver *s = (struct sim_driver *)d;
	struct sim_actor *a = lookup(s, spec->actor_id, spec->instance);
	if (!a)
		return 1;
	char *c = strdup(spec->config_json);
	if (c) {
		free(a->config);
		a->config = c;
	}
	return 0;
}

static int sim_checkpoint(struct driver *d, const char *actor_id, long long instance, int force, int64_t now,
			  long long *state_version, char **data)
{
	struct sim_driver *s = (struct sim_driver *)d;
	struct sim_actor *a = lookup(s, actor_id, instance);
	if (!a)
		return -1;
	long long count = count_at(a, now);
	if (!force && count == a->snap_count)
		return 1;
	char raw[64];
	int n = snprintf(raw, sizeof(raw), "{\"count\":%lld}", count);
	char *b = driver_b64_encode(raw, (size_t)n);
	if (!b)
		return -1;
	a->version++;
	a->snap_count = count;
	*state_version = a->version;
	*data = b;
	return 0;
}

static void fill(const struct sim_actor *a, struct driver_status *st)
{
	st->actor_id = a->actor_id;
	st->instance = a->instance;
	st->state = DRIVER_RUNNING;
	st->state_version = a->version;
	st->cpu_required = a->cpu;
	st->memory_required_mb = a->mem;
}

static int sim_find(struct driver *d, const char *actor_id, long long instance, struct driver_status *st)
{
	struct sim_actor *a = lookup((struct sim_driver *)d, actor_id, instance);
	if (!a)
		return -1;
	fill(a, st);
	return 0;
}

static void sim_list(struct driver *d, void (*fn)(void *ctx, const struct driver_status *st), void *ctx)
{
	struct sim_driver *s = (struct sim_driver *)d;
	size_t pos = 0;
	struct sim_actor *a;
	while ((a = hmap_next(&s->actors, &pos))) {
		struct driver_status st;
		fill(a, &st);
		fn(ctx, &st);
	}
}

static int sim_poll(struct driver *d, int64_t now)
{
	return 0; /* sim actors never crash */
}

static void sim_destroy(struct driver *d)
{
	struct sim_driver *s = (struct sim_driver *)d;
	if (!s)
		return;
	size_t pos = 0;
	struct sim_actor *a;
	while ((a = hmap_next(&s->actors, &pos)))
		actor_free(a);
	hmap_release(&s->actors);
	free(s);
}

static const struct driver_ops sim_ops = {
	.start = sim_start,
	.stop = sim_stop,
	.config = sim_config,
	.checkpoint = sim_checkpoint,
	.find = sim_find,
	.list = sim_list,
	.poll = sim_poll,
	.destroy = sim_destroy,
};

struct driver *driver_sim_new(void)
{
	struct sim_driver *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->d.ops = &sim_ops;
	s->d.name = "sim";
	hmap_init(&s->actors);
	return &s->d;
}
