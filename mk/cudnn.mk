# mk/cudnn.mk — cuDNN's fused SDPA for ds-train's attention (kernels/attn_cudnn.cu),
# included by the main Makefile after its own rules (it uses NVCC, NVFLAGS and
# build/libdscuda.a from there).
#
# cudnn-frontend is NVIDIA's header-only C++ graph API over cuDNN. Its
# headers come from PyPI at build time, never from git: the wheel of
# nvidia-cudnn-frontend carries them in include/. The wheel is pinned by
# version, by its exact file (the pip flags below pick the one CPython 3.11
# x86_64 build, whatever Python runs pip) and by its sha256, then only
# include/ is unpacked into build/cudnn-frontend/include.
#
# 1.23.0: headers identical to the v1.23.0 tag of the frontend's repository,
# released after cuDNN 9.19 (its support checks know 9.19 and later); the
# ragged (THD) path it drives needs cuDNN >= 9.6 on sm_90 and >= 9.18.1 on
# sm_80 (kernels/attn_cudnn.h).

CUDNN_FE_VERSION = 1.23.0
CUDNN_FE_WHEEL   = nvidia_cudnn_frontend-$(CUDNN_FE_VERSION)-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
CUDNN_FE_SHA256  = 7bdae232a3071501012611fab14aae34dd16983205e56d3c1641317910fdd385
CUDNN_FE_DIR     = build/cudnn-frontend
CUDNN_FE_INC     = $(CUDNN_FE_DIR)/include
CUDNN_FE_STAMP   = $(CUDNN_FE_DIR)/.ok-$(CUDNN_FE_VERSION)
CUDNN_FE_PIP    ?= python3 -m pip
# cudnn-frontend calls cuDNN directly (-lcudnn) and NVRTC for the optional
# open-source engines it can compile at run time (-lnvrtc).
CUDNN_LIBS       = -lcudnn -lnvrtc

$(CUDNN_FE_STAMP):
	@mkdir -p $(CUDNN_FE_DIR)/wheel
	@w=$(CUDNN_FE_DIR)/wheel/$(CUDNN_FE_WHEEL); \
	if [ ! -f $$w ] && ! $(CUDNN_FE_PIP) download --no-deps --only-binary=:all: \
	    --python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
	    -d $(CUDNN_FE_DIR)/wheel nvidia-cudnn-frontend==$(CUDNN_FE_VERSION) > $(CUDNN_FE_DIR)/pip.log 2>&1; then \
	  echo "mk/cudnn.mk: cannot download nvidia-cudnn-frontend==$(CUDNN_FE_VERSION) from PyPI (no network?);" \
	       "the cuDNN attention needs its headers: see $(CUDNN_FE_DIR)/pip.log, or build with CUDNN=0 (the hand-written attention) or CUDA=0" >&2; \
	  exit 1; \
	fi; \
	if [ ! -f $$w ]; then \
	  echo "mk/cudnn.mk: pip did not produce $$w (a different wheel was published?)" >&2; exit 1; \
	fi; \
	if ! echo "$(CUDNN_FE_SHA256)  $$w" | sha256sum -c --status; then \
	  echo "mk/cudnn.mk: $$w: sha256 is not the pinned $(CUDNN_FE_SHA256); removed" >&2; rm -f $$w; exit 1; \
	fi; \
	rm -rf $(CUDNN_FE_INC) && \
	python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("include/")])' \
	  $$w $(CUDNN_FE_DIR) && \
	test -f $(CUDNN_FE_INC)/cudnn_frontend.h || { echo "mk/cudnn.mk: $$w holds no include/cudnn_frontend.h" >&2; exit 1; }
	@touch $@

# The explicit rule wins over the main Makefile's build/kernels/%.o pattern.
# Several minutes of host compilation: cudnn-frontend is large.
build/kernels/attn_cudnn.o: kernels/attn_cudnn.cu kernels/attn_cudnn.h build/flags $(CUDNN_FE_STAMP)
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -I$(CUDNN_FE_INC) -c -o $@ $<

# On a GPU (make gpu-check): cuDNN's SDPA against the SIMT flash kernel.
build/gpu/test_cudnn_attn: tests/gpu/test_cudnn_attn.cu kernels/attn_cudnn.h build/kernels/attn_cudnn.o build/libdscuda.a
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -o $@ $< build/kernels/attn_cudnn.o build/libdscuda.a $(CUDNN_LIBS) -lcudart
