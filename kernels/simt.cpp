/* simt.cpp — the CPU runtime behind kernels/simt.h: a block's threads as
 * cooperative fibers (ucontext), blocks one after another, with shared
 * memory race checks and barrier checks. Single-threaded by design: a
 * kernel's behaviour here is deterministic, an update between two switch
 * points is atomic, and launches from several host threads take turns.
 *
 * A fiber starts on its own stack through makecontext/swapcontext, then
 * switches with _setjmp/_longjmp: glibc's swapcontext saves and restores
 * the signal mask with a system call each time, which made switching
 * (every barrier, every warp shuffle of every thread) 60% of a whole
 * training step's time here. Under ASan every switch stays a swapcontext,
 * which its fiber annotations are made for. */
#undef _FORTIFY_SOURCE /* its longjmp check refuses a jump to another stack */
#include "simt.h"

#include <csetjmp>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <pthread.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SIMT_ASAN 1
#endif

namespace simt {

/* Plain globals, not thread_local: GCC's UBSan misreads a thread_local
 * pointer inside a fiber (a null load of a set pointer, seen with GCC 12),
 * and one launch runs at a time anyway (launch_lock). */
fiber *cur;
uint3_ block_idx;
dim3 block_dim, grid_dim;
static pthread_mutex_t launch_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- reports ------------------------------------------------------------ */

static int n_reports;
static char report_text[4096];

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
	if (n_reports++ >= 8) return; /* counted, not all kept */
	size_t used = strlen(report_text);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(report_text + used, sizeof report_text - used, fmt, ap);
	va_end(ap);
	used = strlen(report_text);
	if (used + 1 < sizeof report_text) strcat(report_text, "\n");
}

/* ---- the fibers of one block ---------------------------------------------- */

enum state { READY, AT_BARRIER, AT_WARP, DONE };

struct shadow { /* per shared byte: who touched it since the last barrier */
	unsigned epoch;
	int writer, reader;       /* thread (linear), -1 none, reader -2: several */
	unsigned writer_wep, reader_wep; /* their warp's __syncwarp count then */
};

struct sbuf {
	const void *key; /* the declaration (SIMT_SHARED's static), or NULL: dynamic */
	unsigned char *base;
	size_t bytes;
	shadow *sh;
};

struct thread_ctx {
	fiber pub;
	ucontext_t uc;
	state st;
	const char *file;
	int line;
	/* a pending warp operation */
	const char *what;
	unsigned mask;
	uint32_t give, got;
	int src, pred;
	void *fake_stack;
	bool started;   /* entered its stack once (fast switching) */
	jmp_buf jb;     /* where it yielded (fast switching) */
};

struct block_run {
	const char *kernel;
	std::vector<thread_ctx> t;
	std::vector<unsigned> warp_epoch; /* __syncwarp count per warp */
	std::vector<sbuf> bufs;
	size_t dyn_bytes;
	unsigned epoch; /* block barriers passed */
	body_fn body;
	void *arg;
	ucontext_t sched;
	jmp_buf sched_jb;
	unsigned char *stacks;
	size_t stack_bytes;
	const void *sched_bottom;
	size_t sched_size;
};

static block_run *run;

static thread_ctx &me() { return run->t[cur->linear]; }

static void switch_to_scheduler()
{
	thread_ctx &t = me();
#ifdef SIMT_ASAN
	__sanitizer_start_switch_fiber(&t.fake_stack, run->sched_bottom, run->sched_size);
#endif
	if (!_setjmp(t.jb)) _longjmp(run->sched_jb, 1);
#ifdef SIMT_ASAN
	__sanitizer_finish_switch_fiber(t.fake_stack, &run->sched_bottom, &run->sched_size);
#endif
}

static void fiber_main()
{
#ifdef SIMT_ASAN
	__sanitizer_finish_switch_fiber(NULL, &run->sched_bottom, &run->sched_size);
#endif
	run->body(run->arg);
	thread_ctx &t = me();
	t.st = DONE;
	(void)t;
#ifdef SIMT_ASAN
	__sanitizer_start_switch_fiber(NULL, run->sched_bottom, run->sched_size);
#endif
	_longjmp(run->sched_jb, 1);
}

static void name_thread(const thread_ctx &t, char *buf, size_t n)
{
	snprintf(buf, n, "thread (%u,%u,%u) of block (%u,%u,%u)", t.pub.tid.x, t.pub.tid.y, t.pub.tid.z, block_idx.x,
		 block_idx.y, block_idx.z);
}

void sync_block(const char *file, int line)
{
	thread_ctx &t = me();
	t.st = AT_BARRIER;
	t.file = file;
	t.line = line;
	switch_to_scheduler();
}

static uint32_t warp_op(const char *what, unsigned mask, uint32_t give, int src, int pred)
{
	thread_ctx &t = me();
	t.st = AT_WARP;
	t.what = what;
	t.mask = mask;
	t.give = give;
	t.src = src;
	t.pred = pred;
	switch_to_scheduler();
	return t.got;
}

void sync_warp(unsigned mask, const char *what)
{
	warp_op(what, mask, 0, -1, 0);
}

uint32_t warp_exchange(unsigned mask, uint32_t v, int src, const char *what)
{
	return warp_op(what, mask, v, src, 0);
}

unsigned warp_vote(unsigned mask, int pred, const char *what)
{
	return warp_op(what, mask, 0, -1, pred != 0);
}

/* Every thread of each warp that waits at a warp operation: release the
 * groups whose mask is complete; report lanes a mask names that cannot
 * come. Returns whether any thread was released. */
static int resolve_warps()
{
	int released = 0;
	size_t n = run->t.size();
	for (size_t w0 = 0; w0 < n; w0 += 32) {
		size_t w1 = w0 + 32 < n ? w0 + 32 : n;
		for (size_t i = w0; i < w1; i++) {
			thread_ctx &a = run->t[i];
			if (a.st != AT_WARP) continue;
			unsigned mask = a.mask, arrived = 0;
			for (size_t j = w0; j < w1; j++) {
				thread_ctx &b = run->t[j];
				if (b.st == AT_WARP && b.mask == mask && !strcmp(b.what, a.what)) arrived |= 1u << (j - w0);
			}
			unsigned present = (w1 - w0 == 32) ? 0xffffffffu : ((1u << (w1 - w0)) - 1);
			char who[96];
			name_thread(a, who, sizeof who);
			if (!(mask >> (i - w0) & 1))
				report("%s: %s by %s, whose lane is not in its mask 0x%08x", run->kernel, a.what, who, mask);
			if ((mask & ~present) != 0)
				report("%s: %s with mask 0x%08x names lanes past the block's last thread (%s)", run->kernel,
				       a.what, mask, who);
			else if ((mask & present) != arrived)
				report("%s: %s with mask 0x%08x reached by lanes 0x%08x only (%s; the others returned or wait elsewhere)",
				       run->kernel, a.what, mask, arrived, who);
			unsigned votes = 0;
			for (size_t j = w0; j < w1; j++)
				if (arrived >> (j - w0) & 1 && run->t[j].pred) votes |= 1u << (j - w0);
			for (size_t j = w0; j < w1; j++) {
				if (!(arrived >> (j - w0) & 1)) continue;
				thread_ctx &b = run->t[j];
				int s = b.src;
				b.got = b.src < 0 ? votes
				      : (s >= (int)(w0 - w0) && s < 32 && (arrived >> s & 1)) ? run->t[w0 + (size_t)s].give : b.give;
				b.st = READY;
			}
			if (!strcmp(a.what, "__syncwarp")) run->warp_epoch[w0 / 32]++;
			released = 1;
		}
	}
	return released;
}

/* ---- shared memory ------------------------------------------------------- */

static sbuf *find_buf(const void *p)
{
	for (sbuf &b : run->bufs)
		if ((const unsigned char *)p >= b.base && (const unsigned char *)p < b.base + b.bytes) return &b;
	return NULL;
}

static sbuf &new_buf(const void *key, size_t bytes)
{
	sbuf b;
	b.key = key;
	b.bytes = bytes;
	b.base = (unsigned char *)malloc(bytes ? bytes : 1); /* exact: ASan sees past it */
	b.sh = (shadow *)calloc(bytes ? bytes : 1, sizeof(shadow));
	if (!b.base || !b.sh) {
		fprintf(stderr, "simt: out of memory for %zu bytes of shared memory\n", bytes);
		abort();
	}
	memset(b.base, 0xff, bytes); /* NaN in every float and bf16: unset memory shows */
	for (size_t i = 0; i < bytes; i++) b.sh[i] = shadow{~0u, -1, -1, 0, 0};
	run->bufs.push_back(b);
	return run->bufs.back();
}

void *shared_for(const void *key, size_t bytes)
{
	for (sbuf &b : run->bufs)
		if (b.key == key) return b.base;
	return new_buf(key, bytes).base;
}

void *dyn_shared(size_t *bytes)
{
	*bytes = run->dyn_bytes;
	for (sbuf &b : run->bufs)
		if (b.key == NULL) return b.base;
	return new_buf(NULL, run->dyn_bytes).base;
}

void index_error(const void *base, size_t i, size_t n)
{
	char who[96];
	name_thread(me(), who, sizeof who);
	sbuf *b = find_buf(base);
	report("%s: shared index %zu out of range (%zu elements) at byte %zu of a %zu-byte array, by %s", run->kernel, i, n,
	       b ? (size_t)((const unsigned char *)base - b->base) : 0, b ? b->bytes : 0, who);
}

/* Two threads of the block touched one shared byte since the last barrier,
 * at least one writing, and no __syncwarp of their warp came between. */
static int ordered(int other, unsigned other_wep, int self)
{
	unsigned w = (unsigned)self / 32;
	return other >= 0 && (unsigned)other / 32 == w && other_wep < run->warp_epoch[w];
}

void note_access(const void *p, size_t n, int write)
{
	sbuf *b = find_buf(p);
	if (!b) return;
	int self = (int)cur->linear;
	unsigned wep = run->warp_epoch[(unsigned)self / 32];
	size_t off = (size_t)((const unsigned char *)p - b->base);
	for (size_t k = 0; k < n && off + k < b->bytes; k++) {
		shadow &s = b->sh[off + k];
		if (s.epoch != run->epoch) s = shadow{run->epoch, -1, -1, 0, 0};
		const char *kind = NULL;
		int other = -1;
		if (s.writer >= 0 && s.writer != self && !ordered(s.writer, s.writer_wep, self))
			kind = write ? "write after write" : "read after write", other = s.writer;
		else if (write && s.reader != -1 && s.reader != self && !(s.reader >= 0 && ordered(s.reader, s.reader_wep, self)))
			kind = "write after read", other = s.reader;
		if (kind) {
			char a[96], bb[96];
			name_thread(me(), a, sizeof a);
			if (other >= 0) name_thread(run->t[(size_t)other], bb, sizeof bb);
			else snprintf(bb, sizeof bb, "other threads");
			report("%s: shared memory race (%s) at byte %zu of a %zu-byte array between %s and %s, with no barrier between",
			       run->kernel, kind, off + k, b->bytes, a, bb);
			for (size_t j = k; j < n && off + j < b->bytes; j++) b->sh[off + j].epoch = ~0u; /* once per access */
			break;
		}
		if (write) {
			s.writer = self;
			s.writer_wep = wep;
		} else if (s.reader == -1 || s.reader == self) {
			s.reader = self;
			s.reader_wep = wep;
		} else {
			s.reader = -2;
		}
	}
}

/* ---- launch -------------------------------------------------------------- */

#ifdef SIMT_ASAN
static const size_t STACK = 512 * 1024; /* ASan's redzones make frames big */
#else
static const size_t STACK = 128 * 1024;
#endif

/* Run t until it yields or ends. A frame of its own for the _setjmp, so
 * that nothing of the caller's lives across the jump. Under ASan each
 * switch is announced (__sanitizer_*_switch_fiber), whatever does it. */
static __attribute__((noinline)) void resume(block_run &r, thread_ctx &t)
{
	if (_setjmp(r.sched_jb)) return;
	if (t.started) _longjmp(t.jb, 1);
	t.started = true;
	swapcontext(&r.sched, &t.uc); /* its first entry; it comes back by _longjmp */
}

/* A fiber ready to start fiber_main on its stack. A function of its own:
 * getcontext returns twice as far as the compiler knows. */
static __attribute__((noinline)) void fiber_init(thread_ctx &t, unsigned char *stack, size_t bytes)
{
	t.st = READY;
	t.started = false;
	getcontext(&t.uc);
	t.uc.uc_stack.ss_sp = stack;
	t.uc.uc_stack.ss_size = bytes;
	t.uc.uc_link = NULL;
	makecontext(&t.uc, fiber_main, 0);
}

static void run_block(block_run &r)
{
	size_t n = r.t.size();
	r.epoch = 0;
	for (auto &w : r.warp_epoch) w = 0;
	for (size_t i = 0; i < n; i++) fiber_init(r.t[i], r.stacks + i * r.stack_bytes, r.stack_bytes);
	for (;;) {
		for (size_t i = 0; i < n; i++) {
			thread_ctx &t = r.t[i];
			if (t.st != READY) continue;
			cur = &t.pub;
#ifdef SIMT_ASAN
			void *fake = NULL;
			__sanitizer_start_switch_fiber(&fake, r.stacks + i * r.stack_bytes, r.stack_bytes);
#endif
			resume(r, t);
#ifdef SIMT_ASAN
			__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
		}
		if (resolve_warps()) continue;
		size_t waiting = 0, done = 0;
		for (size_t i = 0; i < n; i++) {
			waiting += r.t[i].st == AT_BARRIER;
			done += r.t[i].st == DONE;
		}
		if (done == n) break;
		if (done) {
			const thread_ctx *w = NULL;
			for (size_t i = 0; i < n && !w; i++)
				if (r.t[i].st == AT_BARRIER) w = &r.t[i];
			char who[96];
			name_thread(*w, who, sizeof who);
			report("%s: __syncthreads at %s:%d reached by %zu of %zu threads (e.g. %s); %zu returned before it",
			       r.kernel, w->file, w->line, waiting, n, who, done);
		}
		for (size_t i = 0; i < n; i++)
			if (r.t[i].st == AT_BARRIER) r.t[i].st = READY;
		r.epoch++;
	}
	for (sbuf &b : r.bufs) free(b.base), free(b.sh);
	r.bufs.clear();
}

cudaError_t launch(const char *name, dim3 grid, dim3 block, size_t shmem, body_fn body, void *arg)
{
	size_t n = (size_t)block.x * block.y * block.z;
	if (n == 0 || n > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
	    grid.z > 65535 || shmem > 227 * 1024) {
		report("%s: invalid launch: grid (%u,%u,%u), block (%u,%u,%u), %zu bytes of dynamic shared memory", name,
		       grid.x, grid.y, grid.z, block.x, block.y, block.z, shmem);
		return cudaErrorInvalidConfiguration;
	}
	block_run r;
	r.kernel = name;
	r.t.resize(n);
	r.warp_epoch.assign((n + 31) / 32, 0);
	r.dyn_bytes = shmem;
	r.body = body;
	r.arg = arg;
	r.stack_bytes = STACK;
	void *st = mmap(NULL, n * STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (st == MAP_FAILED) return cudaErrorMemoryAllocation;
	r.stacks = (unsigned char *)st;
	for (unsigned z = 0, i = 0; z < block.z; z++)
		for (unsigned y = 0; y < block.y; y++)
			for (unsigned x = 0; x < block.x; x++, i++) {
				fiber &f = r.t[i].pub;
				f.tid = uint3_{x, y, z};
				f.linear = i;
				f.lane = i % 32;
				f.warp = i / 32;
			}
	pthread_mutex_lock(&launch_lock);
	run = &r;
	grid_dim = grid;
	block_dim = block;
	for (unsigned z = 0; z < grid.z; z++)
		for (unsigned y = 0; y < grid.y; y++)
			for (unsigned x = 0; x < grid.x; x++) {
				block_idx = uint3_{x, y, z};
				run_block(r);
			}
	run = NULL;
	cur = NULL;
	pthread_mutex_unlock(&launch_lock);
	munmap(st, n * STACK);
	return cudaSuccess;
}

} // namespace simt

/* ---- the host side ------------------------------------------------------- */

cudaError_t cudaMalloc(void **p, size_t n)
{
	*p = malloc(n ? n : 1); /* exact, so ASan sees a kernel's overrun */
	return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void *p)
{
	free(p);
	return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind)
{
	if (n) memmove(dst, src, n);
	return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t)
{
	return cudaMemcpy(dst, src, n, k);
}
cudaError_t cudaMemset(void *p, int v, size_t n)
{
	if (n) memset(p, v, n);
	return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) { return cudaMemset(p, v, n); }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
const char *cudaGetErrorString(cudaError_t e)
{
	return e == cudaSuccess ? "no error" : e == cudaErrorInvalidConfiguration ? "invalid configuration argument"
					   : "out of memory";
}

extern "C" int simt_take_reports(char *buf, size_t n)
{
	int k = simt::n_reports;
	if (buf && n) snprintf(buf, n, "%s", simt::report_text);
	simt::n_reports = 0;
	simt::report_text[0] = '\0';
	return k;
}
