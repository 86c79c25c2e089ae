/* outbox: releasing it twice is safe. The loop releases it when it begins to
 * close (before the NATS connection goes) and again in loop_close; a leader
 * that had taken agents' acks held the arrays of queued updates, and the
 * second release freed them again (chaos_smoke.sh under ASan: a double free
 * in outbox_release at exit). */
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "outbox.h"
#include "tap.h"

int main(void)
{
	tap_plan(4);
	struct outbox o;
	outbox_init(&o, NULL, true);
	/* What taking acks leaves behind: the queue's arrays, emptied. */
	o.pend = calloc(64, sizeof(*o.pend));
	o.cappend = 64;
	o.msgs = calloc(64, sizeof(*o.msgs));
	o.capmsgs = 64;
	ok(o.pend && o.msgs, "the queue's arrays allocated");
	outbox_release(&o);
	ok(o.pend == NULL && o.cappend == 0 && o.msgs == NULL && o.capmsgs == 0,
	   "a release leaves no pointer to what it freed");
	outbox_release(&o); /* the second release (loop_close): must free nothing again */
	ok(o.pend == NULL && o.msgs == NULL && o.npend == 0 && o.nmsgs == 0 && o.flight.n == 0 && o.track.n == 0,
	   "released twice (a double free aborts the test before this point): still empty");
	/* And the outbox is as new: it can be used and released again. */
	outbox_init(&o, NULL, true);
	outbox_release(&o);
	ok(o.pend == NULL && o.msgs == NULL, "a fresh outbox releases cleanly");
	return tap_done();
}
