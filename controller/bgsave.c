/* memfd_create, SCHED_IDLE: Linux, as raft_uv itself is. */
#define _GNU_SOURCE
#include "bgsave.h"

#include <errno.h>
#include <raft.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model.h"
#include "snapz.h"

/* The child: serialise, compress into the memfd (snapz.h), leave. Exit status
 * 0 means the memfd holds it. */
static void __attribute__((noreturn)) child(const struct model *m, uint64_t index, int fd)
{
	/* Do not outlive a parent killed meanwhile. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(4);
	/* Run only on CPU time the replica and its PostgreSQL leave: a snapshot may
	 * take longer under load, a write should not. */
	struct sched_param sp = {.sched_priority = 0};
	if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
		(void)setpriority(PRIO_PROCESS, 0, 19);
	size_t len = 0;
	char *base = model_snapshot_dump((struct model *)m, index, &len);
	if (base == NULL)
		_exit(2);
	_exit(snapz_write(fd, base, len) == 0 ? 0 : 3);
}

int bgsave_start(struct bgsave *b, const struct model *m, uint64_t index)
{
	memset(b, 0, sizeof(*b));
	b->fd = memfd_create("lattice-snapshot", MFD_CLOEXEC);
	if (b->fd < 0) {
		b->err = errno;
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0)
		child(m, index, b->fd);
	if (pid < 0) {
		b->err = errno;
		close(b->fd);
		b->fd = -1;
		return -1;
	}
	b->pid = pid;
	return 0;
}

int bgsave_collect(struct bgsave *b, char *err, size_t errlen)
{
	int st = 0;
	while (waitpid(b->pid, &st, 0) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			return -1;
		}
	}
	b->pid = 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, errlen, "the child serialising it %s %d", WIFSIGNALED(st) ? "died of signal" : "exited with",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		return -1;
	}
	struct stat sb;
	if (fstat(b->fd, &sb) != 0 || sb.st_size <= 0) {
		snprintf(err, errlen, "the child's output is empty or unreadable");
		return -1;
	}
	/* Shared pages of the memfd: no copy of the (tens of MB) snapshot. */
	void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, b->fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap of the child's output: %s", strerror(errno));
		return -1;
	}
	b->base = p;
	b->len = (size_t)sb.st_size;
	b->mapped = true;
	return 0;
}

void bgsave_release(struct bgsave *b, void *buf)
{
	if (buf != NULL) {
		if (b->mapped)
			munmap(buf, b->len);
		else
			raft_free(buf);
	}
	b->base = NULL;
	if (b->pid > 0) {
		kill(b->pid, SIGKILL);
		while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR)
			;
		b->pid = 0;
	}
	if (b->fd >= 0) {
		close(b->fd);
		b->fd = -1;
	}
}
