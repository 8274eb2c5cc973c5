/* safetensors.h — Hugging Face safetensors files, read (mmapped) and written.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {str: str}, "NAME": {"dtype": "F32", "shape": [...],
 *    "data_offsets": [begin, end]}, ...}
 * and the tensor data, offsets counted from the end of the header. The
 * reference is the `safetensors` Python package (0.8): a file it refuses we
 * refuse, with a message naming the file and the tensor; we are stricter in
 * a few places it is lax (duplicate tensor names, non-integer numbers).
 * A model directory holds model.safetensors, or the shards named by
 * model.safetensors.index.json, as transformers' save_pretrained writes.
 *
 * Values are little-endian on disk; this code assumes a little-endian host.
 */
#ifndef DS_SAFETENSORS_H
#define DS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* The dtypes we convert; every other safetensors dtype (F64, I8, BOOL,
 * F8_E4M3, ...) is read as ST_OTHER, its name in dtype_name. */
typedef enum { ST_F32, ST_F16, ST_BF16, ST_OTHER } st_dtype;

#define ST_MAX_DIMS 8

typedef struct st_tensor {
	const char *name;       /* borrowed from the model */
	st_dtype dtype;
	const char *dtype_name; /* "F32", "BF16", "I8", ... (static) */
	int ndim;               /* 0 for a scalar */
	int64_t shape[ST_MAX_DIMS];
	size_t numel;           /* product of shape (1 for a scalar) */
	const void *data;       /* (numel) of dtype, in the mapping; borrowed.
	                         * Aligned to the element size when the file is
	                         * laid out as the Python package and this
	                         * writer lay it out; safetensors_to_f32 does
	                         * not need it to be. */
	size_t nbytes;
} st_tensor;

/* ---- reading ------------------------------------------------------------- */

/* One file, or the shards of one model, mmapped read-only. */
typedef struct st_model st_model;

/* Open a .safetensors file. Returns owned (close with safetensors_close),
 * or NULL with *err an owned message naming path (free with free()). */
st_model *safetensors_open(const char *path, char **err);

/* Open DIR/model.safetensors, or else DIR/model.safetensors.index.json and
 * every shard its weight_map names (a shard file that is missing, or a
 * tensor the index names that its shard lacks, is an error; a tensor in two
 * shards too). Tensors come shard by shard in file order; the metadata is
 * the first shard's. Returns owned, or NULL with *err owned. */
st_model *safetensors_open_dir(const char *dir, char **err);

/* The bytes buf[0..n) as one file (borrowed: keep them until close);
 * messages call it "<memory>". For the fuzzer and tests. */
st_model *safetensors_open_mem(const void *buf, size_t n, char **err);

size_t safetensors_count(const st_model *m);

/* Tensor i, 0 <= i < count, in file order (shard by shard). Borrowed;
 * valid until safetensors_close. */
const st_tensor *safetensors_at(const st_model *m, size_t i);

/* The tensor called name, or NULL. Borrowed; valid until close. */
const st_tensor *safetensors_find(const st_model *m, const char *name);

/* The __metadata__ value of key, or NULL. Borrowed; valid until close. */
const char *safetensors_metadata(const st_model *m, const char *key);

/* Convert t into out[t->numel] (fp32): F32 is copied, F16 and BF16 widened
 * exactly (NaN payloads kept). Returns 0, or -1 with *err owned for any
 * other dtype. */
int safetensors_to_f32(const st_tensor *t, float *out, char **err);

void safetensors_close(st_model *m);

/* ---- writing ------------------------------------------------------------- */

/* Round fp32 to bf16 / f16 to nearest, ties to even, as torch's
 * .to(torch.bfloat16) / .to(torch.float16) do: f16 overflows to inf and
 * has subnormals. A NaN stays a NaN with its sign (quieted; torch's own
 * NaN bits differ between its CPU paths). */
uint16_t safetensors_f32_to_bf16(float f);
uint16_t safetensors_f32_to_f16(float f);
float safetensors_f16_to_f32(uint16_t h);
float safetensors_bf16_to_f32(uint16_t h);

typedef struct st_writer st_writer;

/* Returns owned; free with safetensors_writer_free. */
st_writer *safetensors_writer_new(void);

/* Add a tensor: data (shape[0] x ... x shape[ndim-1], fp32) is borrowed
 * until safetensors_writer_save returns, name and shape are copied. It is
 * stored as dtype (ST_F32, ST_BF16 or ST_F16). Returns 0, or -1 when the
 * tensor is refused (bad dtype, ndim, shape, a duplicate or reserved
 * name); save then fails with the reason. */
int safetensors_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
			   const int64_t *shape, const float *data);

/* Set __metadata__ key to value (both copied; a second call for the same
 * key replaces the value). transformers wants "format": "pt". */
void safetensors_writer_meta(st_writer *w, const char *key, const char *value);

/* Write DIR/model.safetensors; or, when the tensors do not fit in
 * max_shard_bytes (0: never shard), DIR/model-0000K-of-0000N.safetensors
 * and model.safetensors.index.json, split as transformers' save_pretrained
 * splits them (in the order added; a tensor larger than the limit gets a
 * shard of its own). Each file goes to a temporary name in DIR, is
 * fsync'd and renamed into place; the index last; then whatever an earlier
 * save with another layout left (model.safetensors, the index, shards of
 * another count) is removed. Headers are padded with spaces to a multiple
 * of 8 bytes as the Python package pads them. Returns 0, or -1 with *err
 * owned. */
int safetensors_writer_save(st_writer *w, const char *dir, size_t max_shard_bytes, char **err);

/* Write every tensor of w into the one file at path, whatever its size
 * (no shards, no index): for files other than a model's weights, such as
 * ds-train's optimizer state. Atomic as above. Returns 0, or -1 with *err
 * owned. */
int safetensors_writer_save_file(st_writer *w, const char *path, char **err);

void safetensors_writer_free(st_writer *w);

#endif
