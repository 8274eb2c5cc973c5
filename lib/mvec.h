/* mvec.h — glibc's libmvec has a vector expf, but math.h declares it only
 * under -ffast-math, which would loosen every other float; declaring it
 * here lets the softmax loops of the CPU backend (ops_cpu.c, kd.c) call it
 * 4 floats at a time (linked with -lmvec). */
#ifndef DS_MVEC_H
#define DS_MVEC_H

#include <math.h>

__attribute__((simd("notinbranch"))) float expf(float);

#endif
