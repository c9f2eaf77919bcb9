// SuiteSparse from Debian's libsuitesparse-dev (no pkg-config file there): UMFPACK for the LU
// factorisation of indefinite complex matrices (shift-invert), CHOLMOD for the Cholesky
// factorisation of positive definite ones (KPM's overlap). 64-bit index ("_l"/"zl") entry points.
#pragma once
#include <suitesparse/umfpack.h>
#include <suitesparse/cholmod.h>
