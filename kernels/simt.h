/* simt.h — what a kernel source sees, under nvcc and on the CPU.
 *
 * Every kernel in the .cu files of kernels/ is compiled twice from the same text: by
 * nvcc for the GPU, and by the host C++ compiler against the CPU runtime
 * below (kernels/simt.cpp), so that `make test` executes the kernels'
 * index arithmetic, shared-memory tiling, barriers and warp reductions
 * before a GPU ever does. The CPU runtime runs a block's threads as
 * cooperative fibers that switch at every barrier and warp operation, one
 * block after another, and it checks what the hardware does not:
 *   - shared memory is reached through checked views: an index out of
 *     range, and two threads touching one shared byte between two
 *     barriers with at least one writing (compute-sanitizer's racecheck),
 *     are reported with the kernel, the offset and both threads;
 *   - a barrier (or a warp operation) that not every thread reaches is
 *     reported, not a hang; so is a warp operation whose mask names a
 *     lane that is not there;
 *   - shared memory starts as NaN bytes in every block, and global
 *     buffers come from malloc at their exact size, so AddressSanitizer
 *     (make test SAN=1) sees any read or write past them.
 *
 * What a kernel may use: blockIdx, threadIdx, blockDim, gridDim;
 * __syncthreads(); SIMT_SHARED / SIMT_DYN_SHARED for shared memory (never
 * a bare __shared__); on 32- and 64-bit values __shfl_sync, __shfl_xor_sync, __shfl_down_sync,
 * __shfl_up_sync, __ballot_sync, __any_sync, __all_sync, __syncwarp;
 * atomicAdd, atomicMax on int; bf16 conversions; the math functions of
 * <cmath> and rsqrtf, __expf (glibc has it); SIMT_LAUNCH for the launch.
 */
#ifndef DS_SIMT_H
#define DS_SIMT_H

#ifdef __CUDACC__ /* ---- the GPU: the real thing ------------------------ */

#include <cuda_bf16.h>
#include <cuda_runtime.h>

typedef __nv_bfloat16 bf16;

#define SIMT_SHARED(T, name, n) __shared__ T name[n]
#define SIMT_DYN_SHARED(T, name)                                                                   \
	extern __shared__ __align__(16) unsigned char simt_dyn_smem_[];                            \
	T *name = reinterpret_cast<T *>(simt_dyn_smem_)
/* Launch, then the launch's own error (a bad configuration) at once. */
#define SIMT_LAUNCH(kernel, grid, block, shmem, stream, ...)                                       \
	(kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__), cudaGetLastError())

#else /* ---- the CPU runtime ------------------------------------------- */

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct dim3 {
	unsigned x, y, z;
	constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3_ {
	unsigned x, y, z;
};

typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorInvalidConfiguration = 9, cudaErrorMemoryAllocation = 2 };
typedef struct simt_stream_ *cudaStream_t; /* streams are ignored: launches run at once, in order */
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };

/* bf16 as the GPU has it: the top half of an IEEE float, rounded to
 * nearest even (NaN kept a quiet NaN). */
struct bf16 {
	uint16_t bits;
};
typedef bf16 __nv_bfloat16;
static inline float __bfloat162float(bf16 h)
{
	uint32_t u = (uint32_t)h.bits << 16;
	float f;
	std::memcpy(&f, &u, 4);
	return f;
}
static inline bf16 __float2bfloat16(float f)
{
	uint32_t u;
	std::memcpy(&u, &f, 4);
	bf16 h;
	if ((u & 0x7fffffffu) > 0x7f800000u) h.bits = (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
	else h.bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
	return h;
}
static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static inline float __fdividef(float a, float b) { return a / b; }
template <class T> static inline T __ldg(const T *p) { return *p; }

namespace simt {

/* One CUDA thread: a fiber. */
struct fiber {
	uint3_ tid;
	unsigned linear, lane, warp;
};
extern fiber *cur; /* the running thread (launches are serialised) */
extern uint3_ block_idx;
extern dim3 block_dim, grid_dim;

void sync_block(const char *file, int line);
void sync_warp(unsigned mask, const char *what);
/* Exchange one 32-bit word among the warp: each lane gives v and gets
 * the word lane src gave (src out of the mask or past the warp: its own). */
uint32_t warp_exchange(unsigned mask, uint32_t v, int src, const char *what);
unsigned warp_vote(unsigned mask, int pred, const char *what);

/* Shared memory of the running block, checked. */
void *shared_for(const void *key, size_t bytes);
void *dyn_shared(size_t *bytes);
void note_access(const void *p, size_t n, int write);
void index_error(const void *base, size_t i, size_t n);

template <class T> class sh_ref {
	T *p_;

public:
	explicit sh_ref(T *p) : p_(p) {}
	operator T() const
	{
		note_access(p_, sizeof(T), 0);
		return *p_;
	}
	sh_ref &operator=(T v)
	{
		note_access(p_, sizeof(T), 1);
		*p_ = v;
		return *this;
	}
	sh_ref &operator=(const sh_ref &o) { return *this = (T)o; }
	sh_ref &operator+=(T v) { return *this = (T)*this + v; }
	sh_ref &operator-=(T v) { return *this = (T)*this - v; }
	sh_ref &operator*=(T v) { return *this = (T)*this * v; }
	sh_ref &operator/=(T v) { return *this = (T)*this / v; }
};

template <class T> class sh_view {
	T *base_;
	size_t n_;

public:
	sh_view(void *base, size_t n) : base_(static_cast<T *>(base)), n_(n) {}
	sh_ref<T> operator[](size_t i) const
	{
		if (i >= n_) index_error(base_, i, n_);
		return sh_ref<T>(base_ + (i < n_ ? i : 0));
	}
	sh_view operator+(size_t k) const
	{
		if (k > n_) index_error(base_, k, n_);
		return sh_view(base_ + k, n_ - k);
	}
};

typedef void (*body_fn)(void *);
/* Run body(arg) as grid x block threads; name is the kernel's. Returns
 * cudaSuccess or cudaErrorInvalidConfiguration (a block over 1024
 * threads, dynamic shared memory over 227 KB, an empty grid). */
cudaError_t launch(const char *name, dim3 grid, dim3 block, size_t shmem, body_fn body, void *arg);

template <class F> static void call_body(void *f) { (*static_cast<F *>(f))(); }
/* The arguments are taken by value once, as a launch takes them. */
template <class K, class... A>
static cudaError_t launch_kernel(const char *name, dim3 grid, dim3 block, size_t shmem, K kernel, A... args)
{
	auto f = [=]() { kernel(args...); };
	return launch(name, grid, block, shmem, call_body<decltype(f)>, &f);
}

} // namespace simt

#define threadIdx (simt::cur->tid)
#define blockIdx (simt::block_idx)
#define blockDim (simt::block_dim)
#define gridDim (simt::grid_dim)
#define __syncthreads() simt::sync_block(__FILE__, __LINE__)
static inline void __syncwarp(unsigned mask = 0xffffffffu) { simt::sync_warp(mask, "__syncwarp"); }

#define SIMT_SHARED(T, name, n)                                                                    \
	static const char simt_key_##name = 0;                                                     \
	simt::sh_view<T> name(simt::shared_for(&simt_key_##name, sizeof(T) * (n)), (n))
#define SIMT_DYN_SHARED(T, name)                                                                   \
	size_t simt_dyn_bytes_##name;                                                              \
	void *simt_dyn_base_##name = simt::dyn_shared(&simt_dyn_bytes_##name);                     \
	simt::sh_view<T> name(simt_dyn_base_##name, simt_dyn_bytes_##name / sizeof(T))
#define SIMT_LAUNCH(kernel, grid, block, shmem, stream, ...)                                       \
	((void)(stream), simt::launch_kernel(#kernel, (grid), (block), (shmem), kernel, __VA_ARGS__))

template <class T> static inline T simt_shfl_(unsigned mask, T v, int src, const char *what)
{
	static_assert(sizeof(T) == 4 || sizeof(T) == 8, "warp shuffles move 32- and 64-bit values");
	uint32_t w[2] = {0, 0};
	std::memcpy(w, &v, sizeof(T));
	for (size_t k = 0; k < sizeof(T) / 4; k++) w[k] = simt::warp_exchange(mask, w[k], src, what);
	T r;
	std::memcpy(&r, w, sizeof(T));
	return r;
}
/* width: lanes are grouped into segments of width, as on the GPU. */
template <class T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32)
{
	int lane = (int)simt::cur->lane;
	return simt_shfl_(mask, v, (lane & ~(width - 1)) + (src & (width - 1)), "__shfl_sync");
}
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lm, int width = 32)
{
	int lane = (int)simt::cur->lane, s = lane ^ lm;
	return simt_shfl_(mask, v, (s & ~(width - 1)) == (lane & ~(width - 1)) ? s : lane, "__shfl_xor_sync");
}
template <class T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32)
{
	int lane = (int)simt::cur->lane, s = lane + (int)d;
	return simt_shfl_(mask, v, (s & ~(width - 1)) == (lane & ~(width - 1)) ? s : lane, "__shfl_down_sync");
}
template <class T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32)
{
	int lane = (int)simt::cur->lane, s = lane - (int)d;
	return simt_shfl_(mask, v, s >= 0 && (s & ~(width - 1)) == (lane & ~(width - 1)) ? s : lane, "__shfl_up_sync");
}
static inline unsigned __ballot_sync(unsigned mask, int p) { return simt::warp_vote(mask, p, "__ballot_sync"); }
static inline int __any_sync(unsigned mask, int p) { return simt::warp_vote(mask, p, "__any_sync") != 0; }
static inline int __all_sync(unsigned mask, int p)
{
	return (simt::warp_vote(mask, p, "__all_sync") & mask) == (simt::warp_vote(mask, 1, "__all_sync") & mask);
}
/* Fibers switch only at barriers and warp operations: an update between
 * them is atomic as it stands. */
static inline float atomicAdd(float *p, float v)
{
	float old = *p;
	*p = old + v;
	return old;
}
static inline int atomicAdd(int *p, int v)
{
	int old = *p;
	*p = old + v;
	return old;
}
static inline int atomicMax(int *p, int v)
{
	int old = *p;
	if (v > old) *p = v;
	return old;
}

/* The host side a launcher needs. */
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int v, size_t n);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s = 0);
cudaError_t cudaGetLastError(void);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
const char *cudaGetErrorString(cudaError_t e);

/* What the CPU runtime found since the last call (races, out-of-range
 * indices, divergent barriers): the count, with the first reports' text
 * in buf (NUL-terminated), then cleared. */
extern "C" int simt_take_reports(char *buf, size_t n);

#endif /* __CUDACC__ */

#endif
