// ARPACK-NG (Debian libarpack2-dev) through its Fortran symbols: arpack.h's C wrappers take
// `double _Complex`, which Swift does not import. Complex arrays are interleaved (re, im) doubles;
// LOGICAL is a 4-byte int; gfortran appends one hidden size_t length per character argument.
#pragma once
#include <stddef.h>

void znaupd_(int *ido, const char *bmat, const int *n, const char *which, const int *nev,
             const double *tol, double *resid, const int *ncv, double *v, const int *ldv,
             int *iparam, int *ipntr, double *workd, double *workl, const int *lworkl,
             double *rwork, int *info, size_t bmat_len, size_t which_len);

void zneupd_(const int *rvec, const char *howmny, const int *select, double *d, double *z,
             const int *ldz, const double *sigma, double *workev, const char *bmat, const int *n,
             const char *which, const int *nev, const double *tol, double *resid, const int *ncv,
             double *v, const int *ldv, int *iparam, int *ipntr, double *workd, double *workl,
             const int *lworkl, double *rwork, int *info, size_t howmny_len, size_t bmat_len,
             size_t which_len);
