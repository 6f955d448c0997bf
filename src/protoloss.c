/* protoloss.c - prototypical-network episode loss and gradient (see include/fsb/protoloss.h).
 * Straight loops in double: an episode is at most a few hundred embeddings of a few
 * hundred dimensions, negligible next to the backbone's forward and backward. */
#include "fsb/protoloss.h"

#include <assert.h>
#include <math.h>

size_t fsb_protoloss_scratch(int way, int shot, int query, int dim)
{
    (void)shot;
    return (size_t)way * (size_t)dim + (size_t)way * (size_t)query * (size_t)way;
}

double fsb_protoloss(const float *emb, int way, int shot, int query, int dim, double temperature,
                     float *demb, int *n_correct, double *work)
{
    assert(way >= 1 && shot >= 1 && query >= 1 && dim >= 1 && temperature > 0);
    int ns = way * shot, nq = way * query;
    double *proto = work, *z = work + (size_t)way * dim; /* (way, dim), (nq, way) */
    const float *q = emb + (size_t)ns * dim;
    for (int c = 0; c < way; c++) {
        double *p = proto + (size_t)c * dim;
        for (int k = 0; k < dim; k++)
            p[k] = 0;
        for (int j = 0; j < shot; j++) {
            const float *s = emb + (size_t)(c * shot + j) * dim;
            for (int k = 0; k < dim; k++)
                p[k] += s[k];
        }
        for (int k = 0; k < dim; k++)
            p[k] /= shot;
    }
    double loss = 0;
    int correct = 0;
    for (int i = 0; i < nq; i++) {
        const float *qi = q + (size_t)i * dim;
        double *zi = z + (size_t)i * way, zmax = -HUGE_VAL;
        int arg = 0, y = i / query;
        for (int c = 0; c < way; c++) {
            const double *p = proto + (size_t)c * dim;
            double d2 = 0;
            for (int k = 0; k < dim; k++) {
                double d = qi[k] - p[k];
                d2 += d * d;
            }
            zi[c] = -d2 / temperature;
            if (zi[c] > zmax) {
                zmax = zi[c];
                arg = c;
            }
        }
        correct += arg == y;
        double sum = 0;
        for (int c = 0; c < way; c++)
            sum += exp(zi[c] - zmax);
        loss += zmax + log(sum) - zi[y];
        /* z becomes g = dL/dz */
        for (int c = 0; c < way; c++)
            zi[c] = (exp(zi[c] - zmax) / sum - (c == y)) / nq;
    }
    if (n_correct) *n_correct = correct;
    if (demb) {
        double f = 2.0 / temperature;
        for (int k = 0; k < dim; k++) {
            /* dimension-major so each accumulation stays in a double register */
            for (int c = 0; c < way; c++) {
                double dp = 0;
                for (int i = 0; i < nq; i++)
                    dp += z[(size_t)i * way + c] *
                          (q[(size_t)i * dim + k] - proto[(size_t)c * dim + k]);
                float ds = (float)(f * dp / shot);
                for (int j = 0; j < shot; j++)
                    demb[(size_t)(c * shot + j) * dim + k] = ds;
            }
            for (int i = 0; i < nq; i++) {
                double dq = 0;
                for (int c = 0; c < way; c++)
                    dq += z[(size_t)i * way + c] *
                          (q[(size_t)i * dim + k] - proto[(size_t)c * dim + k]);
                demb[(size_t)(ns + i) * dim + k] = (float)(-f * dq);
            }
        }
    }
    return loss / nq;
}
