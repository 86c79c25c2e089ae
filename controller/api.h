/* api — the REST API: one route table (method, path, handler, accepted query
 * parameters) drives dispatch, 404/405 answers and the route listing; one error
 * table maps codes to HTTP statuses. Reads of nodes and actors are served
 * from the applied model's view (view.h), the others from this replica's
 * PostgreSQL on threads of their own (workq.h); writes become ops for the loop thread (api_write.c). */
#ifndef LATTICE_API_H
#define LATTICE_API_H

#include <stdio.h>

#include "http.h"
#include "metrics.h"

struct loop;
struct store;
struct config;
struct sse;
struct workq;

struct api {
	struct loop *loop;
	struct store *store;
	const struct config *cfg;
	struct metrics metrics;
	struct sse *sse; /* GET /v1/events as server-sent events; NULL: none */
	/* Threads that run the PostgreSQL reads, so an HTTP worker never waits on
	 * the database (--pg-read-threads); NULL: they run on the HTTP thread. */
	struct workq *reads;
};

void api_init(struct api *a, struct loop *loop, struct store *store, const struct config *cfg);
/* http_handler_fn */
enum http_next api_handle(void *arg, struct http_req *req, struct http_resp *resp);
/* http_config.index: what this replica's PostgreSQL shows now */
uint64_t api_index(void *arg);
/* http_config.observe */
void api_observe(void *arg, const struct http_req *req, int status, double seconds);
/* Prints "METHOD PATH" per route (docs, --routes). */
void api_routes_print(FILE *out);

#endif
