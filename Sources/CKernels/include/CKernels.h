// CKernels: elementwise inner loops that Swift cannot vectorise, called by Autograd. Swift's
// Float.squareRoot() goes through C's sqrtf with errno semantics, so a Swift loop containing it
// (Adam's update) stays scalar, and SIMD8<Float>.squareRoot() is taken lane by lane. Here clang's
// vector extension and __builtin_elementwise_sqrt give one vector square root per 8 lanes.
// Every lane computes exactly the scalar expression (IEEE +, ×, ÷ and √ are correctly rounded,
// nothing is contracted into fused multiply-adds): the same bits as Autograd's scalar loop.
#ifndef HARMOSE_CKERNELS_H
#define HARMOSE_CKERNELS_H

/// One Adam step on n Float elements, in place (Autograd/Optimizers.swift, `Adam.update`):
///   g ← g + wd·w (coupled);  w ← w·decay (decoupled);  m ← b1·m + c1·g;  v ← b2·v + c2·g·g;
///   w ← w − stepSize·m / (√v / sqrtBc2 + eps).
void harmose_adam_step_f32(float *w, float *m, float *v, const float *g, long n,
                           float b1, float c1, float b2, float c2, float stepSize, float sqrtBc2, float eps,
                           float wd, float decay, int coupled, int decoupled);

#endif
