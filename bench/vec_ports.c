/*
 * vec_ports.c — bench helper: what one core's vector units do per second, to
 * tell where a kernel's floor is. Times, on 512-bit registers:
 *   - 12 independent chains of each of VPDPBUSD, VFMADD231PS, VDPBF16PS
 *     (throughput);
 *   - 8 VPDPBUSD chains alone, 4 FMA chains alone, and both in one loop: when
 *     the mix takes the sum of the two times, the two kinds of instruction
 *     share the same execution ports, and every float step of a quantized
 *     matmul (the mul and FMA that scale each block's integer dot) costs as
 *     much as a VPDPBUSD.
 * The chains start from different values (so that no compiler merges them).
 *
 *   cc -O2 -march=native bench/vec_ports.c -o build/vec_ports && build/vec_ports
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define N_ITER 50000000L
#define R4(X) X(0) X(1) X(2) X(3)
#define R8(X) R4(X) X(4) X(5) X(6) X(7)
#define R12(X) R8(X) X(8) X(9) X(10) X(11)

int main(int argc, char **argv) {
    (void)argv;
    const int seed = argc; /* unknown to the compiler */
#define DECL_I(i) __m512i a##i = _mm512_set1_epi32(seed * (i + 1));
    R12(DECL_I)
#define DECL_F(i) __m512 f##i = _mm512_set1_ps((float)(seed * (i + 1)));
    R12(DECL_F)
    const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8((char)seed);
    const __m512 x = _mm512_set1_ps(0.5f), y = _mm512_set1_ps(0.25f);
    const __m512bh h = (__m512bh)_mm512_set1_epi16(0x3f00);
#define DP(i) a##i = _mm512_dpbusd_epi32(a##i, u, s);
#define FMA(i) f##i = _mm512_fmadd_ps(f##i, x, y);
#define BF(i) f##i = _mm512_dpbf16_ps(f##i, h, h);
    double t, per_core_ghz_ops;

    t = now_s();
    for (long n = 0; n < N_ITER; n++) { R12(DP) }
    t = now_s() - t;
    per_core_ghz_ops = 12.0 * N_ITER / t / 1e9;
    printf("vpdpbusd zmm, 12 chains: %.2f G/s = %.0f GMAC/s\n", per_core_ghz_ops, per_core_ghz_ops * 64);
    t = now_s();
    for (long n = 0; n < N_ITER; n++) { R12(FMA) }
    t = now_s() - t;
    per_core_ghz_ops = 12.0 * N_ITER / t / 1e9;
    printf("vfmadd231ps zmm, 12 chains: %.2f G/s = %.0f GFLOP/s\n", per_core_ghz_ops, per_core_ghz_ops * 32);
    t = now_s();
    for (long n = 0; n < N_ITER; n++) { R12(BF) }
    t = now_s() - t;
    per_core_ghz_ops = 12.0 * N_ITER / t / 1e9;
    printf("vdpbf16ps zmm, 12 chains: %.2f G/s = %.0f GMAC/s\n", per_core_ghz_ops, per_core_ghz_ops * 32);

    double t_dp = now_s();
    for (long n = 0; n < N_ITER; n++) { R8(DP) }
    t_dp = (now_s() - t_dp) / N_ITER * 1e9;
    double t_f = now_s();
    for (long n = 0; n < N_ITER; n++) { R8(FMA) }
    t_f = (now_s() - t_f) / N_ITER * 1e9;
    double t_mix = now_s();
    for (long n = 0; n < N_ITER; n++) { R8(DP) R8(FMA) }
    t_mix = (now_s() - t_mix) / N_ITER * 1e9;
    printf("8 vpdpbusd %.2f ns, 8 fma %.2f ns, both in one loop %.2f ns (sum %.2f, max %.2f)\n", t_dp, t_f, t_mix,
           t_dp + t_f, t_dp > t_f ? t_dp : t_f);

    __m512i ai = a0;
#define FOLD_I(i) ai = _mm512_xor_si512(ai, a##i);
    R12(FOLD_I)
    __m512 af = f0;
#define FOLD_F(i) af = _mm512_add_ps(af, f##i);
    R12(FOLD_F)
    printf("(checksums %d %g)\n", _mm512_reduce_add_epi32(ai), (double)_mm512_reduce_add_ps(af));
    return 0;
}
