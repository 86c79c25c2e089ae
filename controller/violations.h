/* violations — what one security policy's current version forbids that runs
 * anyway (SPEC: a new version applies to future placements and links; running
 * actors are not moved, but what breaks the policy is listed): an instance on
 * a node the policy covers that needs more memory than its cap, or that holds
 * a contract (declared by the actor or through a link) the policy denies or
 * does not allow. GET /v1/policies/{id}/violations. Loop thread; reads the
 * model only. */
#ifndef LATTICE_VIOLATIONS_H
#define LATTICE_VIOLATIONS_H

#include <stddef.h>

struct model;

/* The answer as JSON text (malloc'd, the caller frees): {"policy_id",
 * "version", "total", "items": [...] sorted by actor, instance, kind, contract,
 * at most limit of them}. Returns 0; -1 when the policy does not exist; -2
 * when out of memory. */
int violations_render(const struct model *m, const char *policy_id, size_t limit, char **out);

#endif
