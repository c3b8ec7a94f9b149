/*
 * sampler_cost.c — bench helper: what one sl_sampler_sample costs per token
 * for a vocabulary of N (default Qwen2's 151,936) with llama.cpp's default
 * chain and with each further sampler on, over 300 tokens of history
 * (penalties and DRY look at them). Logits are roughly normal with a
 * spread like a small model's (sd 3). Prints microseconds per call, best of
 * ROUNDS rounds of 50 calls.
 *
 *   cc -O2 -Iinclude -Isrc bench/sampler_cost.c build/libshardlm.a -lm -pthread -o build/sampler_cost
 *   build/sampler_cost [N=151936] [ROUNDS=5]
 */
#include "bench_util.h"
#include "engine/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double normal(void) { /* sum of 4 uniforms, scaled */
    double s = 0;
    for (int i = 0; i < 4; i++) s += rbyte() / 255.0;
    return (s - 2.0) * 1.7;
}

int main(int argc, char **argv) {
    const int32_t n = argc > 1 ? atoi(argv[1]) : 151936;
    const int rounds = argc > 2 ? atoi(argv[2]) : 5;
    float *l = malloc(sizeof *l * (size_t)n);
    int32_t hist[300];
    if (!l || n < 1000) return 1;
    for (int32_t i = 0; i < n; i++) l[i] = (float)(3.0 * normal());
    for (int i = 0; i < 300; i++) hist[i] = (int32_t)((i % 40) * 97 % n); /* repeats for DRY to find */
    int32_t head = 13, off[2] = {0, 0};
    const sl_dry_breakers brk = {.n = 1, .head = &head, .off = off};
    static const char *const names[] = {"default chain (top-k 40, top-p 0.95, min-p 0.05, temp 0.8)",
                                        "top-k off, top-p 0.95",
                                        "+ DRY 0.8 (300 tokens of history)",
                                        "+ top-n-sigma 1.5",
                                        "+ typical-p 0.9 (top-k 40)",
                                        "+ typical-p 0.9, top-k off",
                                        "+ XTC 1.0 / 0.1",
                                        "+ dynatemp 0.5",
                                        "mirostat 2",
                                        "mirostat 1"};
    for (int c = 0; c < (int)(sizeof names / sizeof names[0]); c++) {
        sl_sampler_params p = sl_sampler_default_params();
        p.repeat_penalty = 1.1f;
        switch (c) {
        case 1: p.top_k = 0; break;
        case 2: p.dry_multiplier = 0.8f; break;
        case 3: p.top_n_sigma = 1.5f; break;
        case 4: p.typical_p = 0.9f; break;
        case 5: p.typical_p = 0.9f, p.top_k = 0; break;
        case 6: p.xtc_probability = 1.0f; break;
        case 7: p.dynatemp_range = 0.5f; break;
        case 8: p.mirostat = 2; break;
        case 9: p.mirostat = 1; break;
        }
        sl_sampler *s;
        if (sl_sampler_create(&p, n, &s) != SL_OK || sl_sampler_set_dry_breakers(s, &brk) != SL_OK) return 1;
        double best = 1e30;
        for (int r = 0; r < rounds; r++) {
            const double t0 = now();
            for (int i = 0; i < 50; i++) sl_sampler_sample(s, l, hist, 300, 1, (uint64_t)(r * 50 + i));
            const double us = (now() - t0) / 50 * 1e6;
            if (us < best) best = us;
        }
        printf("%-62s %8.1f us\n", names[c], best);
        sl_sampler_destroy(s);
    }
    free(l);
    return 0;
}
