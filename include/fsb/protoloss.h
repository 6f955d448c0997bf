/* protoloss.h - the prototypical-network episode loss (Snell et al. 2017) and its exact
 * gradient with respect to every embedding, for episodic meta-training (pretrain.c).
 *
 * One episode of `way` classes: embeddings (n, D) in the order the episode is fed to the
 * network, the support first, label-major (row c*shot + j is shot j of class c), then the
 * queries, label-major (row way*shot + c*query + j is query j of class c). With
 *   p_c  = (1/shot) sum_j s_{c,j}                         (prototypes)
 *   z_ic = -||q_i - p_c||^2 / T                            (logits, T = temperature)
 *   L    = (1/nq) sum_i [ log sum_c exp z_ic - z_{i,y_i} ] (mean cross-entropy, nq = way*query)
 * and g_ic = (softmax(z_i)_c - [c = y_i]) / nq the gradients are
 *   dL/dq_i     = -(2/T) sum_c g_ic (q_i - p_c)
 *   dL/ds_{c,j} =  (2/T) (1/shot) sum_i g_ic (q_i - p_c).
 * Everything is computed in double from float inputs; no allocation.
 */
#ifndef FSB_PROTOLOSS_H
#define FSB_PROTOLOSS_H

#include <stddef.h>

/* Doubles of scratch fsb_protoloss needs: way*dim (prototypes) + way*query*way (logits). */
size_t fsb_protoloss_scratch(int way, int shot, int query, int dim);

/* The loss L above for emb (way*(shot+query), dim), returned. demb (same shape, may be
 * NULL) is OVERWRITTEN with dL/demb. *n_correct (may be NULL) receives the number of queries
 * whose nearest prototype (largest logit, first on ties) is their own class. work holds
 * fsb_protoloss_scratch(...) doubles. way >= 1, shot >= 1, query >= 1, dim >= 1,
 * temperature > 0 (asserted). */
double fsb_protoloss(const float *emb, int way, int shot, int query, int dim, double temperature,
                     float *demb, int *n_correct, double *work);

#endif
