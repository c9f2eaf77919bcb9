// CKernels: see include/CKernels.h for what lives here and why.
#include "CKernels.h"
#include <string.h>

// a·b + c must stay a rounded product and a rounded sum (as in Swift), never a fused multiply-add.
#pragma clang fp contract(off)

typedef float v8f __attribute__((ext_vector_type(8)));

void harmose_adam_step_f32(float *w, float *m, float *v, const float *g, long n,
                           float b1, float c1, float b2, float c2, float stepSize, float sqrtBc2, float eps,
                           float wd, float decay, int coupled, int decoupled) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f gi, wi, mi, vi;
        memcpy(&gi, g + i, sizeof gi); memcpy(&wi, w + i, sizeof wi);
        memcpy(&mi, m + i, sizeof mi); memcpy(&vi, v + i, sizeof vi);
        if (coupled) gi = gi + wd * wi;
        if (decoupled) wi = wi * decay;
        mi = b1 * mi + c1 * gi;
        vi = b2 * vi + c2 * gi * gi;
        wi = wi - stepSize * mi / (__builtin_elementwise_sqrt(vi) / sqrtBc2 + eps);
        memcpy(w + i, &wi, sizeof wi); memcpy(m + i, &mi, sizeof mi); memcpy(v + i, &vi, sizeof vi);
    }
    for (; i < n; i++) {
        float gi = g[i];
        if (coupled) gi = gi + wd * w[i];
        if (decoupled) w[i] = w[i] * decay;
        m[i] = b1 * m[i] + c1 * gi;
        v[i] = b2 * v[i] + c2 * gi * gi;
        w[i] = w[i] - stepSize * m[i] / (__builtin_elementwise_sqrt(v[i]) / sqrtBc2 + eps);
    }
}
