/* ops_cpu.h — the CPU backend of ops.h: fp32 in host memory, matrix
 * products through BLAS (OpenBLAS's OpenMP build: inside an OpenMP loop its
 * calls run on one thread, outside it uses them all), the rest in OpenMP
 * loops. Stored fp16/bf16 matrices (generation) go through wmat.h.
 *
 * Its memory is host memory, so from_host is the pointer itself and
 * map/unmap cost nothing: a model's parameters are used where qwen2_load
 * put them.
 */
#ifndef DS_OPS_CPU_H
#define DS_OPS_CPU_H

#include "ops.h"

extern const ops ops_cpu;

/* A context for ops_cpu: the working space of the ops (attention scores,
 * the LM head's logits), grown to the largest call and reused. Returns
 * owned (ops_cpu_free). */
void *ops_cpu_new(void);
void ops_cpu_free(void *ctx);

#endif
