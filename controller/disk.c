#include "disk.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

void disk_init(struct disk *g, const char *dir, uint64_t segment_size, uint64_t reserve)
{
	memset(g, 0, sizeof(*g));
	snprintf(g->dir, sizeof(g->dir), "%s", dir);
	g->segment_size = segment_size;
	g->reserve = reserve;
	g->state = DISK_OK;
}

void disk_read(const char *dir, bool segments, struct disk_reading *out)
{
	memset(out, 0, sizeof(*out));
	struct statvfs sv;
	if (statvfs(dir, &sv) != 0) {
		out->err = errno;
		return;
	}
	out->free = (uint64_t)sv.f_bavail * sv.f_frsize;
	out->total = (uint64_t)sv.f_blocks * sv.f_frsize;
	if (!segments)
		return;
	DIR *d = opendir(dir);
	if (d == NULL) {
		out->err = errno;
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "open-", 5) == 0)
			out->open_segments++;
	closedir(d);
}

static void mib(char *buf, size_t len, uint64_t bytes)
{
	snprintf(buf, len, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
}

void disk_set_spool(struct disk *g, const char *path, uint64_t headroom)
{
	snprintf(g->spool_path, sizeof(g->spool_path), "%s", path);
	g->spool_headroom = headroom;
}

/* What raft may need next, given reading r, and for what. */
static uint64_t raft_need(const struct disk *g, const struct disk_reading *r, const char **what)
{
	/* The segment being written is one of the open ones; any other is a
	 * prepared one, so the next switch needs no new space. (While raft
	 * finalizes a segment it is counted too, for a few milliseconds, just
	 * after a switch: the new segment then has all its room ahead.) */
	uint64_t need = (r->open_segments >= 2 ? 0 : g->segment_size) + g->reserve;
	*what = "the next Raft log segment";
	if (g->snapshot_need != 0 && g->snapshot_need + g->segment_size + g->reserve > need) {
		need = g->snapshot_need + g->segment_size + g->reserve;
		*what = "the next Raft snapshot";
	}
	return need;
}

bool disk_spool_fits(struct disk *g, uint64_t len, char *why, size_t whylen)
{
	struct disk_reading r;
	const char *what;
	disk_read(g->dir, false, &r);
	/* Room for a whole segment too: no need to list the directory. */
	r.open_segments = 0;
	if (r.err == 0 && r.free >= raft_need(g, &r, &what) + len)
		return true;
	if (r.err == 0)
		disk_read(g->dir, true, &r);
	if (r.err != 0) {
		snprintf(why, whylen, "cannot examine the data dir %.200s: %s (errno %d)", g->dir, strerror(r.err), r.err);
		return false;
	}
	uint64_t need = raft_need(g, &r, &what);
	if (r.free >= need + len)
		return true;
	char f[32], n[32];
	mib(f, sizeof(f), r.free);
	mib(n, sizeof(n), need);
	snprintf(why, whylen, "the data dir %.200s has %s free and Raft needs %s of it for %s (ENOSPC, errno %d)",
		 g->dir, f, n, what, ENOSPC);
	return false;
}

bool disk_decide(struct disk *g, const struct disk_reading *r)
{
	enum disk_state was = g->state;
	char before[sizeof(g->reason)];
	memcpy(before, g->reason, sizeof(before));
	g->last = *r;
	if (g->state == DISK_LOG_FAILED)
		return false; /* sticky: raft's log state is not trustworthy any more */
	if (r->err != 0) {
		g->state = DISK_ERROR;
		snprintf(g->reason, sizeof(g->reason), "cannot examine the data dir %.200s: %s (errno %d)", g->dir,
			 strerror(r->err), r->err);
		return g->state != was || strcmp(before, g->reason) != 0;
	}
	const char *what;
	uint64_t need = raft_need(g, r, &what);
	/* While the projection spools, entries raft takes must still fit in it. */
	if (r->spool > 0)
		need += g->spool_headroom;
	g->need = need;
	if (r->free >= need) {
		g->state = DISK_OK;
		g->snapshot_need = 0;
		g->reason[0] = '\0';
		return g->state != was;
	}
	g->state = DISK_FULL;
	char f[32], n[32];
	mib(f, sizeof(f), r->free);
	mib(n, sizeof(n), need);
	int len = snprintf(g->reason, sizeof(g->reason),
			   "the disk of the data dir %.200s is full: no space left on device (ENOSPC, errno %d): %s "
			   "free, %s needed for %s%s; writes are refused until space is freed",
			   g->dir, ENOSPC, f, n, what, r->spool > 0 ? " and the PostgreSQL projection's spool" : "");
	if (r->spool > 0 && len > 0 && (size_t)len < sizeof(g->reason)) {
		char sp[32];
		mib(sp, sizeof(sp), r->spool);
		snprintf(g->reason + len, sizeof(g->reason) - (size_t)len,
			 " (the spool holds %s while PostgreSQL is unreachable, and is removed once it is back)", sp);
	}
	/* Log again only when the state changes, not for every byte of drift. */
	return g->state != was;
}

/* The spool's size (0 when there is none). */
static uint64_t spool_size(const struct disk *g)
{
	struct stat st;
	return g->spool_path[0] && stat(g->spool_path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

bool disk_check(struct disk *g)
{
	struct disk_reading r;
	disk_read(g->dir, false, &r);
	uint64_t spool = spool_size(g);
	/* With room for a whole segment (and a waiting snapshot), whether raft
	 * holds a prepared segment changes nothing: skip the listing. */
	uint64_t enough = g->segment_size + g->reserve + (g->snapshot_need ? g->snapshot_need + g->segment_size : 0) +
			  (spool ? g->spool_headroom : 0);
	if (r.err == 0 && r.free < enough)
		disk_read(g->dir, true, &r);
	r.spool = spool;
	return disk_decide(g, &r);
}

bool disk_snapshot_fits(struct disk *g, size_t len)
{
	struct disk_reading r;
	disk_read(g->dir, true, &r);
	r.spool = spool_size(g);
	/* A snapshot closes the segment being written, so the next append takes
	 * a prepared one (or a new one) as well. */
	if (r.err == 0 && r.free >= (uint64_t)len + g->segment_size + g->reserve) {
		disk_decide(g, &r);
		return true;
	}
	g->snapshot_need = len;
	disk_decide(g, &r);
	return false;
}

void disk_log_failed(struct disk *g, const char *message, bool resumable)
{
	snprintf(g->log_error, sizeof(g->log_error), "%s", message);
	if (resumable) {
		disk_check(g);
		return;
	}
	g->state = DISK_LOG_FAILED;
	snprintf(g->reason, sizeof(g->reason),
		 "writing the Raft log in %.200s failed (%.200s); writes are refused until latticed is restarted", g->dir,
		 message);
}
