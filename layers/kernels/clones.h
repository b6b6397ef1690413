/* CYFFE_CLONES: build a function for AVX-512, AVX2 and the baseline, the best chosen when the
 * module loads (GCC's target_clones; other compilers get the baseline). For plain C loops
 * that the compiler vectorizes: the build itself targets the baseline (SSE2). */
#ifndef CYFFE_CLONES_H
#define CYFFE_CLONES_H
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CYFFE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CYFFE_CLONES
#endif
#endif
