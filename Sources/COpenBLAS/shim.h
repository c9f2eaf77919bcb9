// BLAS through OpenBLAS's CBLAS header; LAPACK through its Fortran symbols, because Debian's
// OpenBLAS ships LAPACK but not LAPACKE. Fortran passes everything by reference and appends one
// hidden `size_t` length per character argument, declared here explicitly.
#pragma once
#include <stddef.h>
#include <cblas.h>

typedef struct { double re, im; } harmose_complex_double;

// Generalized Hermitian-definite eigenproblem A x = λ B x (divide and conquer).
void zhegvd_(const int *itype, const char *jobz, const char *uplo, const int *n,
             harmose_complex_double *a, const int *lda, harmose_complex_double *b, const int *ldb,
             double *w, harmose_complex_double *work, const int *lwork, double *rwork,
             const int *lrwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t uplo_len);
// Hermitian eigenproblem.
void zheevd_(const char *jobz, const char *uplo, const int *n, harmose_complex_double *a,
             const int *lda, double *w, harmose_complex_double *work, const int *lwork,
             double *rwork, const int *lrwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t uplo_len);
// Real symmetric eigenproblem.
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t uplo_len);
// Real symmetric-definite generalized eigenproblem.
void dsygvd_(const int *itype, const char *jobz, const char *uplo, const int *n, double *a,
             const int *lda, double *b, const int *ldb, double *w, double *work, const int *lwork,
             int *iwork, const int *liwork, int *info, size_t jobz_len, size_t uplo_len);
// LU factorisation and solve / inverse (real).
void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void dgetri_(const int *n, double *a, const int *lda, const int *ipiv, double *work,
             const int *lwork, int *info);
void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b,
            const int *ldb, int *info);
// Singular value decomposition (real).
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work,
             const int *lwork, int *iwork, int *info, size_t jobz_len);

// OpenBLAS threading control: engines that parallelise above BLAS set it to 1.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
// Name of the kernel family OpenBLAS selected at load time (e.g. "Haswell", "Prescott").
char *openblas_get_corename(void);
