/* aiodefer — moves raft_uv's io_destroy off the loop thread.
 *
 * raft_uv 0.15 gives every log segment its own kernel AIO context and destroys
 * it, on the loop thread, when the segment is closed: at every segment switch
 * (each 8 MiB of log) and at every snapshot. io_destroy waits for an RCU grace
 * period in the kernel: 30-40 ms measured here, during which no write is
 * proposed, applied or answered — the p99 write latency of every run with a
 * segment switch or a snapshot in it.
 *
 * raft_uv calls io_destroy through glibc's syscall(). latticed defines syscall()
 * itself (the executable's definition is the one libraft's calls bind to):
 * io_destroy is queued to a background thread and reported done at once; every
 * other call goes to glibc's. Deferring is safe: by the time raft_uv destroys a
 * context it has closed the segment's file and finished (or cancelled) its
 * writes, and it never uses the context again.
 *
 * Until aiodefer_enable is called, syscall() only forwards. */
#ifndef LATTICE_AIODEFER_H
#define LATTICE_AIODEFER_H

#include <stdint.h>

/* Starts the background thread. Returns 0, or -1 (then io_destroy stays
 * synchronous). Any thread, once. */
int aiodefer_enable(void);
/* Contexts handed to the background thread so far (for tests and /metrics). */
uint64_t aiodefer_deferred(void);

#endif
