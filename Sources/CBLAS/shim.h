// The few CBLAS entry points recurd uses, declared here rather than through <cblas.h> because
// Debian installs that header under an alternatives-managed path that differs between the
// pthread, openmp and serial builds of OpenBLAS. The ABI is the standard CBLAS one.
#ifndef RECURD_CBLAS_SHIM_H
#define RECURD_CBLAS_SHIM_H

enum RecurdCblasOrder { RecurdCblasRowMajor = 101 };
enum RecurdCblasTranspose { RecurdCblasNoTrans = 111, RecurdCblasTrans = 112 };

void cblas_sgemm(int order, int transA, int transB, int m, int n, int k,
                 float alpha, const float *a, int lda, const float *b, int ldb,
                 float beta, float *c, int ldc);
void cblas_sgemv(int order, int trans, int m, int n, float alpha, const float *a, int lda,
                 const float *x, int incx, float beta, float *y, int incy);
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);

#endif
