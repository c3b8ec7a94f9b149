/*
 * kernels_avx2.c — AVX2 + FMA + F16C kernels (placeholder, filled below).
 */
#include "kernels.h"
bool sl_kernels_avx2_init(sl_kernels *k) { (void)k; return false; }
