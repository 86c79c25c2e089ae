/* test_disk — when may raft write? disk_decide over readings of the data dir:
 * room for the next log segment unless a prepared one is waiting, room for a
 * snapshot that did not fit, the reserve, errors, the sticky failed log, and
 * that a change is reported once. Plus disk_read on a real directory. */
#include "disk.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB (1024ull * 1024)
#define SEG (8 * MiB)

static struct disk_reading reading(uint64_t free, unsigned open)
{
	struct disk_reading r = {.err = 0, .free = free, .total = 100 * MiB, .open_segments = open};
	return r;
}

int main(void)
{
	tap_plan(36);
	struct disk g;
	disk_init(&g, "/data/lattice", SEG, 1 * MiB);
	ok(disk_writable(&g), "writable before any reading");

	struct disk_reading r = reading(4 * MiB, 2);
	ok(!disk_decide(&g, &r) && disk_writable(&g), "a prepared segment waiting: 4 MiB free is enough");
	r = reading(4 * MiB, 1);
	ok(disk_decide(&g, &r), "no prepared segment and no room for one: a change");
	is_int(g.state, DISK_FULL, "... to full");
	ok(!disk_writable(&g), "... not writable");
	is_int(g.need, 9 * MiB, "needs a segment plus the reserve");
	ok(strstr(g.reason, "/data/lattice") != NULL, "the reason names the data dir: %s", g.reason);
	ok(strstr(g.reason, "ENOSPC") != NULL && strstr(g.reason, "errno 28") != NULL, "... and the errno");
	ok(strstr(g.reason, "4.0 MiB free") != NULL && strstr(g.reason, "9.0 MiB needed") != NULL,
	   "... and how much is free and needed");
	r = reading(4 * MiB + 4096, 1);
	ok(!disk_decide(&g, &r), "still full: no second report");
	r = reading(9 * MiB, 1);
	ok(disk_decide(&g, &r) && disk_writable(&g), "room again: a change back to writable");
	is_int(g.reason[0], 0, "... with no reason");
	r = reading(9 * MiB - 1, 0);
	ok(disk_decide(&g, &r) && !disk_writable(&g), "no open segment yet (a new data dir): a segment must fit");
	r = reading(512 * 1024, 3);
	disk_decide(&g, &r);
	ok(!disk_writable(&g), "the reserve applies even with prepared segments");

	/* A snapshot that does not fit. */
	disk_init(&g, "/d", SEG, 1 * MiB);
	r = reading(20 * MiB, 2);
	disk_decide(&g, &r);
	ok(disk_writable(&g) && !disk_snapshot_blocked(&g), "writable with 20 MiB free");
	g.snapshot_need = 13 * MiB; /* what disk_snapshot_fits records */
	disk_decide(&g, &r);
	ok(!disk_writable(&g) && disk_snapshot_blocked(&g), "a 13 MiB snapshot blocks writes at 20 MiB free");
	ok(strstr(g.reason, "snapshot") != NULL && strstr(g.reason, "22.0 MiB needed") != NULL,
	   "... it needs the snapshot, a segment and the reserve: %s", g.reason);
	r = reading(22 * MiB, 2);
	disk_decide(&g, &r);
	ok(disk_writable(&g) && !disk_snapshot_blocked(&g), "room for it: writable, raft may try again");

	/* While the projection spools, raft keeps the headroom free for it. */
	disk_init(&g, "/d", SEG, 1 * MiB);
	disk_set_spool(&g, "/d/projection.spool", 4 * MiB);
	r = reading(12 * MiB, 1);
	ok(!disk_decide(&g, &r) && disk_writable(&g), "12 MiB free, no spool: writable");
	r.spool = 3 * MiB;
	ok(disk_decide(&g, &r) && !disk_writable(&g), "with a spool, the headroom counts: full");
	is_int(g.need, 13 * MiB, "... a segment, the reserve and the spool's headroom");
	ok(strstr(g.reason, "spool holds 3.0 MiB") != NULL, "... and the reason names the spool: %s", g.reason);
	r.spool = 0;
	ok(disk_decide(&g, &r) && disk_writable(&g), "the spool gone: writable again");

	/* The data dir cannot be examined. */
	r = reading(0, 0);
	r.err = EACCES;
	ok(disk_decide(&g, &r) && g.state == DISK_ERROR, "an unreadable data dir is an error state");
	ok(strstr(g.reason, "Permission denied") != NULL, "... saying why: %s", g.reason);

	/* A failed log write raft cannot retry is sticky. */
	disk_init(&g, "/d", SEG, 1 * MiB);
	disk_log_failed(&g, "write: Input/output error", false);
	is_int(g.state, DISK_LOG_FAILED, "a failed log write (not a full disk) stops writes");
	r = reading(100 * MiB, 2);
	ok(!disk_decide(&g, &r) && !disk_writable(&g), "... even with room: until a restart");
	ok(strstr(g.reason, "restarted") != NULL && strstr(g.reason, "Input/output error") != NULL,
	   "... and says so: %s", g.reason);

	/* disk_read on a real directory. */
	char dir[] = "/tmp/lattice-test-disk.XXXXXX";
	if (mkdtemp(dir) == NULL) {
		printf("Bail out! mkdtemp failed\n");
		return 1;
	}
	char path[128];
	for (int i = 1; i <= 2; i++) {
		snprintf(path, sizeof(path), "%s/open-%d", dir, i);
		FILE *fp = fopen(path, "w");
		if (fp)
			fclose(fp);
	}
	snprintf(path, sizeof(path), "%s/0000000000000001-0000000000000009", dir);
	FILE *fp = fopen(path, "w");
	if (fp)
		fclose(fp);
	disk_read(dir, true, &r);
	is_int(r.err, 0, "disk_read of a directory");
	is_int(r.open_segments, 2, "... counts raft's open segments only");
	ok(r.free > 0 && r.total >= r.free, "... and reads the file system's space");
	for (int i = 1; i <= 2; i++) {
		snprintf(path, sizeof(path), "%s/open-%d", dir, i);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/0000000000000001-0000000000000009", dir);
	unlink(path);

	/* The projection spool: disk_check reads its size; it may grow only into
	 * room raft does not need. */
	snprintf(path, sizeof(path), "%s/projection.spool", dir);
	fp = fopen(path, "w");
	if (fp) {
		fputs("0123456789", fp);
		fclose(fp);
	}
	disk_init(&g, dir, 4096, 0);
	disk_set_spool(&g, path, 1 * MiB);
	disk_check(&g);
	is_int(g.last.spool, 10, "disk_check reads the spool's size");
	char why[512] = "";
	ok(disk_spool_fits(&g, 100, why, sizeof(why)), "with room, the spool may grow");
	disk_init(&g, dir, g.last.free + 1, 0); /* raft's next segment takes more than is free */
	ok(!disk_spool_fits(&g, 100, why, sizeof(why)), "the spool may not take the room raft needs");
	ok(strstr(why, dir) && strstr(why, "Raft needs") && strstr(why, "ENOSPC"), "... saying so: %s", why);
	unlink(path);
	rmdir(dir);
	disk_read(dir, true, &r);
	is_int(r.err, ENOENT, "a missing directory: ENOENT");
	return tap_done();
}
