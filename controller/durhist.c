#include "durhist.h"

#include <string.h>

static const double durhist_bounds[2][DURHIST_BUCKETS] = {
	{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1},
	{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 600},
};

void durhist_init(struct durhist *h, enum durhist_scale scale)
{
	memset(h, 0, sizeof(*h));
	h->scale = scale;
}

void durhist_add(struct durhist *h, int64_t us)
{
	if (us < 0)
		us = 0;
	double s = (double)us / 1e6;
	for (int i = 0; i < DURHIST_BUCKETS; i++)
		if (s <= durhist_bounds[h->scale][i]) {
			h->bucket[i]++;
			break;
		}
	h->count++;
	h->sum_us += (uint64_t)us;
}

double durhist_bound(const struct durhist *h, int i)
{
	return durhist_bounds[h->scale][i];
}
