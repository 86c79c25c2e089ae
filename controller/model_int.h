/* model_int — what model.c and model_snap.c share and nothing else uses. */
#ifndef LATTICE_MODEL_INT_H
#define LATTICE_MODEL_INT_H

#include "model.h"

/* Free one object and everything it owns (not its map entry). */
void model_node_free(struct model_node *n);
void model_actor_free(struct model_actor *a);
void model_provider_free(struct model_provider *p);
void model_link_free(struct model_link *l);
void model_policy_free(struct model_policy *p);

#endif
