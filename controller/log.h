/* log — one line per event on stderr: "<RFC 3339 UTC time> <level> <message>".
 * Thread-safe; a line is written with a single write so lines never interleave. */
#ifndef LATTICE_LOG_H
#define LATTICE_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level l);
/* Parses "debug", "info", "warn", "error"; returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
__attribute__((format(printf, 2, 3))) void log_msg(enum log_level l, const char *fmt, ...);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
