# ds — distill DeepSeek-R1's reasoning into small Qwen2 models.
#
#   make              build the seven programs into bin/
#   make test         run every test; ends with "N passed, N failed"
#   make test SAN=1   the same, built with ASan + UBSan
#   make demo         install missing Debian packages, build, run the chain
#   make demo-dpo     then the RL stage: the student's wrong answers, DPO
#   make install PREFIX=/usr/local
#   make CUDA=0       never build the CUDA parts (default: when nvcc is found)

VERSION  := 0.1.0
# `make` alone builds `all`, whatever rule comes first below
.DEFAULT_GOAL := all
PREFIX   ?= /usr/local
DESTDIR  ?=
SHAREDIR  = $(PREFIX)/share/ds
MANDIR    = $(PREFIX)/share/man

CC       ?= cc
SAN      ?= 0
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
WARN      = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -DDS_SHARE_DIR='"$(SHAREDIR)"'
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) -fno-math-errno $(CFLAGS_OMP) $(SANFLAGS) $(CPPFLAGS)
# OpenBLAS (the OpenMP build, so a BLAS call made inside an OpenMP loop
# runs on one thread instead of oversubscribing) and libyaml for ds-train.
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(or $(shell pkg-config --libs openblas 2>/dev/null),-lopenblas)
CPPFLAGS += $(BLAS_CFLAGS)
CFLAGS_OMP = -fopenmp
LDLIBS   += -ljq -lzstd -lcurl -lcrypto -lmicrohttpd -lpthread -lm -lutf8proc -lyaml $(BLAS_LIBS) -lmvec -fopenmp

ifeq ($(SAN),1)
SANFLAGS  = -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow -fno-omit-frame-pointer
LDFLAGS  += $(SANFLAGS)
endif

# CUDA: only when nvcc is there, for Ampere (sm_80) and Hopper (sm_90,
# with its PTX for later cards). Every kernels/*.cu is also compiled by the
# host C++ compiler against the CPU runtime of kernels/simt.h (build/simt/),
# so make test executes the kernels without a GPU.
NVCC     ?= $(shell command -v nvcc 2>/dev/null)
# Not under SAN=1: the sanitizers see no device code, and nvcc's objects
# would be the plain build's again (the CPU runtime's build still is).
ifeq ($(origin CUDA),undefined)
CUDA     := $(if $(NVCC),$(if $(filter 1,$(SAN)),0,1),0)
endif
NVFLAGS   = -O2 -std=c++17 -Ikernels -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
KERN_SRC  = $(wildcard kernels/*.cu)
# CUDNN=0: no cuDNN attention (its frontend headers are fetched from PyPI
# and take a minute and a half to compile); the SIMT kernel computes it.
CUDNN    ?= $(CUDA)
CUDA_SRC  = $(if $(filter 1,$(CUDA)),$(filter-out $(if $(filter 1,$(CUDNN)),,kernels/attn_cudnn.cu),$(KERN_SRC)))
CUDA_OBJ  = $(patsubst kernels/%.cu,build/kernels/%.o,$(CUDA_SRC))
SIMT_OBJ  = $(patsubst kernels/%.cu,build/simt/%.o,$(KERN_SRC)) build/simt/simt.o
CXXFLAGS_SIMT = -std=c++17 -Wall -Wextra -Wshadow -Wno-unused-parameter $(CFLAGS) $(SANFLAGS) -Ikernels

# ds-train's CUDA backend (kernels/ops_cuda.cu in build/libdscuda.a), with
# cuBLASLt and the CUDA runtime found through an rpath to the toolkit; a
# machine without a GPU or driver runs the same binary on the CPU.
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
CUDA_LIBDIR = $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib))
ifeq ($(CUDA),1)
build/bin/ds-train.o: CPPFLAGS += -DDS_CUDA=1
bin/ds-train: build/libdscuda.a
bin/ds-train: LDLIBS += build/libdscuda.a build/libds.a -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) $(if $(filter 1,$(CUDNN)),$(CUDNN_LIBS)) -lcublasLt -lcudart -lstdc++
ifeq ($(CUDNN),1)
build/kernels/ops_cuda.o: NVFLAGS += -DDS_CUDNN=1
endif
endif

# NCCL (with the CUDA toolkit) for ds-train's GPU ranks: lib/comm_nccl.c
# is compiled against it when CUDA=1, and says "built without NCCL" else.
ifeq ($(CUDA),1)
build/lib/comm_nccl.o: CPPFLAGS += -DDS_NCCL=1 -isystem $(CUDA_HOME)/include
bin/ds-train: LDLIBS += -lnccl
endif

# MPI (OpenMPI from Debian) for ds-train's data parallelism across
# processes; MPI=0 builds without. Only ds-train links it.
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null)
ifeq ($(origin MPI),undefined)
MPI      := $(if $(MPI_LIBS),1,0)
endif
ifeq ($(MPI),1)
build/lib/comm_mpi.o build/tests/mpi_comm: CPPFLAGS += -DDS_MPI=1 $(MPI_CFLAGS)
bin/ds-train build/tests/mpi_comm: LDLIBS += $(MPI_LIBS)
endif

PROGS    = ds-fetch ds-teacher ds-judge ds-sharegpt ds-tokenize ds-train ds-infer
BINS     = $(addprefix bin/,$(PROGS))
LIB_SRC  = $(wildcard lib/*.c)
LIB_OBJ  = $(patsubst lib/%.c,build/lib/%.o,$(LIB_SRC))
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNITS    = $(patsubst tests/unit/%.c,build/tests/%,$(UNIT_SRC))
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS  = $(patsubst tests/fuzz/%.c,build/tests/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 60

# Objects depend on build/flags, which changes only when the flags do, so
# `make SAN=1` after `make` rebuilds everything and a second `make` nothing.
FLAGS_LINE := $(CC) $(ALL_CFLAGS) $(LDFLAGS) $(LDLIBS) CUDA=$(CUDA) CUDNN=$(CUDNN) MPI=$(MPI)
$(shell mkdir -p build && (printf '%s\n' '$(FLAGS_LINE)' | cmp -s - build/flags || printf '%s\n' '$(FLAGS_LINE)' > build/flags))

.PHONY: all test units check demo demo-dpo install uninstall clean deps fuzz bench gpu-check
all: $(BINS) $(if $(CUDA_OBJ),build/libdscuda.a)

build/lib/%.o: lib/%.c build/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

build/bin/%.o: bin/%.c build/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

build/kernels/%.o: kernels/%.cu kernels/simt.h kernels/kernels.h kernels/ops_cuda.h lib/ops.h lib/kd_math.h build/flags
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -c -o $@ $<

build/libds.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

# The GPU objects, for the CUDA backend to link (nothing does yet).
build/libdscuda.a: $(CUDA_OBJ)
	rm -f $@ && ar rcs $@ $^

build/simt/%.o: kernels/%.cu kernels/simt.h kernels/kernels.h kernels/ops_cuda.h lib/ops.h lib/kd_math.h build/flags
	@mkdir -p $(@D)
	$(CXX) -x c++ $(CXXFLAGS_SIMT) -c -o $@ $<

build/simt/simt.o: kernels/simt.cpp kernels/simt.h build/flags
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS_SIMT) -c -o $@ $<

build/libsimt.a: $(SIMT_OBJ)
	rm -f $@ && ar rcs $@ $^

# The same kernel tests on a GPU (make gpu-check): nvcc, real launches.
build/gpu/test_kernels: tests/unit/test_simt.cpp build/libdscuda.a build/lib/optim.o
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -c -x cu -o build/gpu/test_simt.o $<
	$(NVCC) -o $@ build/gpu/test_simt.o build/libdscuda.a build/lib/optim.o -lgomp

gpu-check:
	@tests/gpu/gpu-check.sh

# The whole step on a GPU against the CPU engine (make gpu-check).
build/gpu/test_step_cuda: tests/unit/test_step_cuda.c build/libdscuda.a build/libds.a build/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DDS_ON_GPU=1 $(LDFLAGS) -o $@ $< build/libdscuda.a build/libds.a $(LDLIBS) \
		-L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) $(if $(filter 1,$(CUDNN)),$(CUDNN_LIBS)) -lcublasLt -lcudart -lstdc++

# comm_nccl's collectives on a GPU (make gpu-check), one rank or several.
build/gpu/nccl_comm: tests/gpu/nccl_comm.c build/libds.a build/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -isystem $(CUDA_HOME)/include $(LDFLAGS) -o $@ $< build/libds.a $(LDLIBS) \
		-L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lnccl -lcudart

build/tests/test_simt: tests/unit/test_simt.cpp build/libsimt.a build/libds.a build/flags
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS_SIMT) $(LDFLAGS) -o $@ $< build/libsimt.a build/libds.a -lm -fopenmp

bin/%: build/bin/%.o build/libds.a
	$(CC) $(LDFLAGS) -o $@ $< build/libds.a $(LDLIBS)

# ds-infer's server is a file of its own (bin/ds-infer-serve.c), linked in.
bin/ds-infer: build/bin/ds-infer.o build/bin/ds-infer-serve.o build/libds.a
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) build/libds.a $(LDLIBS)

# The CUDA backend's whole step on the CPU runtime, against the CPU engine.
build/tests/test_step_cuda: build/libsimt.a
build/tests/test_step_cuda: LDLIBS := build/libsimt.a build/libds.a $(LDLIBS) -lstdc++

build/tests/%: tests/unit/%.c build/libds.a build/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< build/libds.a $(LDLIBS)

# Debian packages first (installed when missing, as root); then the
# Python references the tests compare against (LLaMA-Factory, Hugging Face
# tokenizers, ...) in tests/.venv, made on first use. Without network the
# tests that need them say "skip"; CI (DS_REQUIRE_ALL=1) fails them instead.
deps:
	@tests/install-deps.sh

test:
	@tests/install-deps.sh
	@$(MAKE) --no-print-directory all units
	@tests/setup-venv.sh || echo "make: tests/.venv could not be made; tests that need it will be skipped" >&2
	@SAN=$(SAN) tests/run.sh

# Benchmarks: each prints medians side by side with its peer, as a ratio.
bench: all
	@tests/bench/sharegpt.sh
	@tests/bench/fetch.sh
	@tests/bench/teacher.sh
	@tests/bench/tokenize.sh
	@tests/bench/train.sh
	@tests/bench/judge.sh
	@tests/bench/infer.sh

units: $(UNITS) $(FUZZERS) build/tests/test_simt $(if $(filter 1,$(MPI)),build/tests/mpi_comm)

# Run by tests/t-mpi.sh under mpirun, not by itself.
build/tests/mpi_comm: tests/mpi/mpi_comm.c build/libds.a build/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< build/libds.a $(LDLIBS)

build/tests/fuzz_%: tests/fuzz/fuzz_%.c build/libds.a build/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< build/libds.a $(LDLIBS)

# libFuzzer on each target, FUZZ_SECONDS each, growing tests/fuzz/corpus/.
# Needs clang (Debian: clang, libclang-rt-14-dev); not part of make test,
# which replays the corpus instead.
# lib/ goes in as an archive (a target takes the objects it needs), less
# the two files that include omp.h, which Debian's clang 14 lacks
# (libomp-dev): no fuzz target reaches the CPU engine.
FUZZ_LIB_SRC = $(filter-out lib/ops_cpu.c lib/wmat.c,$(LIB_SRC))
FUZZ_CFLAGS = -g -O1 -DFUZZING -D_GNU_SOURCE -DDS_SHARE_DIR='"$(SHAREDIR)"' -fsanitize=fuzzer-no-link,address,undefined \
	-Wno-unknown-pragmas -Wno-source-uses-openmp $(BLAS_CFLAGS)
fuzz:
	@mkdir -p build/fuzz/lib
	for s in $(FUZZ_LIB_SRC); do clang $(FUZZ_CFLAGS) -c -o build/fuzz/lib/$$(basename $$s .c).o $$s || exit 1; done
	rm -f build/fuzz/libds.a && ar rcs build/fuzz/libds.a build/fuzz/lib/*.o
	for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang -g -O1 -DFUZZING -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	    -o build/fuzz/$$n $$f build/fuzz/libds.a $(filter-out -fopenmp,$(LDLIBS)) && \
	  mkdir -p tests/fuzz/corpus/$${n#fuzz_} && \
	  build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 tests/fuzz/corpus/$${n#fuzz_} || exit 1; \
	done

check: test

demo:
	@tests/install-deps.sh
	@$(MAKE) --no-print-directory all
	@examples/demo.sh

# the RL stage after demo's SFT: the student's wrong answers to DPO pairs
demo-dpo:
	@tests/install-deps.sh
	@$(MAKE) --no-print-directory all
	@examples/demo-dpo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SHAREDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	cp -R share/. $(DESTDIR)$(SHAREDIR)/
	install -m 644 man/man1/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/man7/*.7 $(DESTDIR)$(MANDIR)/man7/
	if ls man/man5/*.5 >/dev/null 2>&1; then install -m 644 man/man5/*.5 $(DESTDIR)$(MANDIR)/man5/; fi

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(PROGS))
	rm -rf $(DESTDIR)$(SHAREDIR)
	cd man && for f in man*/*.[157]; do rm -f $(DESTDIR)$(MANDIR)/$$f; done

clean:
	rm -rf build $(BINS) tests/tmp

-include $(wildcard build/*/*.d)

# cuDNN attention: its rules and the frontend headers it fetches.
include mk/cudnn.mk
