/* jw — a JSON text writer: compact JSON appended to a growing buffer, commas
 * placed for the caller.
 *
 * For the write path's hot spots — log entries, projection rows, events — where
 * building a jansson tree only to print it once cost a quarter of latticed's CPU.
 * Strings are written as given (the API validated them as UTF-8) with '"', '\'
 * and control characters escaped. Nesting is limited to JW_MAX_DEPTH; deeper
 * nesting, like an allocation failure, sets oom and the text is unusable. */
#ifndef LATTICE_JW_H
#define LATTICE_JW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define JW_MAX_DEPTH 63

struct jw {
	char *p; /* the text, NUL-terminated once anything is written; owned */
	size_t len, cap;
	uint64_t comma; /* bit d: the container at depth d holds an element already */
	int depth;
	bool after_key; /* the next value is a key's: no comma before it */
	bool oom;
	void *(*realloc_fn)(void *, size_t); /* the buffer's allocator; NULL: libc's */
	void (*free_fn)(void *);
};

void jw_init(struct jw *w);
/* With another allocator (e.g. raft_realloc/raft_free for a snapshot, which raft
 * frees itself): jw_take's text and the buffer come from it. */
void jw_init_alloc(struct jw *w, void *(*realloc_fn)(void *, size_t), void (*free_fn)(void *));
/* Empties w for reuse, keeping its buffer. */
void jw_reset(struct jw *w);
/* Room for n more bytes now, so a long text grows once instead of doubling
 * (and copying) its way up. */
void jw_reserve(struct jw *w, size_t n);
void jw_free(struct jw *w);
/* The text (from w's allocator: the caller frees it) and its length, or NULL
 * when oom; w is left empty, with its allocator, either way. */
char *jw_take(struct jw *w, size_t *len);
/* jw_take for a text kept long (a command's payload in the model): its buffer
 * cut to its length (a short text otherwise keeps the 256 bytes it began with). */
char *jw_take_fit(struct jw *w, size_t *len);

void jw_obj(struct jw *w);
void jw_obj_end(struct jw *w);
void jw_arr(struct jw *w);
void jw_arr_end(struct jw *w);
/* In an object: the key of the value that follows. */
void jw_key(struct jw *w, const char *k);
/* A key that needs no escaping, given quoted with its colon: what jw_key
 * writes, without scanning it. Use JW_KEY(w, "name") for a literal; records
 * rendered by the thousand (a page of actors) write ~20 keys each. */
void jw_key_lit(struct jw *w, const char *quoted_colon, size_t n);
#define JW_KEY(w, k) jw_key_lit((w), "\"" k "\":", sizeof("\"" k "\":") - 1)
void jw_str(struct jw *w, const char *s); /* NULL: null */
/* A string of n bytes known to need no escaping (a name from a table, digits
 * and punctuation of a timestamp): jw_str without the scan. */
void jw_str_plain(struct jw *w, const char *s, size_t n);
void jw_int(struct jw *w, int64_t v);
void jw_uint(struct jw *w, uint64_t v);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
/* A value given as JSON text (exactly one value; not checked). */
void jw_json(struct jw *w, const char *text, size_t n);
/* A jansson value (borrowed; NULL, e.g. a failed json_pack, marks w oom). */
void jw_tree(struct jw *w, const json_t *j);
/* The same, stealing the reference. */
void jw_tree_new(struct jw *w, json_t *j);
/* Bytes as they are, outside the comma bookkeeping (for non-JSON text). */
void jw_raw(struct jw *w, const char *s, size_t n);

/* A value the caller writes straight into the buffer, for records rendered by
 * the thousand (a page of actors), where a call per key and value cost more
 * than the text: jw_value_room places the comma the value needs and returns
 * where to write at most max bytes (NULL when out of memory: w is oom); the
 * caller writes with the jw_put_ helpers and hands the end to jw_value_done. */
char *jw_value_room(struct jw *w, size_t max);
void jw_value_done(struct jw *w, char *end);
/* Each writes at p and returns the end. Bounds: jw_put_quoted at most
 * JW_QUOTED_MAX(strlen(s)), the integers at most 20 bytes. */
#define JW_QUOTED_MAX(n) (6 * (n) + 2)
char *jw_put_quoted(char *p, const char *s);
/* Whether the n bytes of s go into a JSON string as they are (no control
 * character, '"' or '\\'): then '"', s, '"' is its quoted form. */
bool jw_plain(const char *s, size_t n);
char *jw_put_uint(char *p, uint64_t v);
char *jw_put_int(char *p, int64_t v);
/* A literal: JW_PUT(p, ",\"id\":") */
#define JW_PUT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

#endif
