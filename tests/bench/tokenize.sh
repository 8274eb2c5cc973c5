#!/bin/sh
# make bench: ds-tokenize against Hugging Face tokenizers and tiktoken (with
# Qwen's ranks, split pattern and added tokens), single thread, on one corpus
# of 50+ MB of text assembled from this machine (tests/oracle/hf_tokenize.py
# corpus: man pages in many languages, locale files, Python's sources, docs).
# The ids must be identical first; then each is timed RUNS times and the
# medians, MB/s (of UTF-8 text), tokens/s and ratios printed.
#
# What each time includes:
#   ds tokenizer_encode   the library call on texts already in memory (a
#                         small harness built here against build/libds.a);
#   ds-tokenize encode    the whole process, JSONL in and out: loading the
#                         tokenizer, parsing and writing the records;
#   HF tokenizers         Tokenizer.encode_batch on a list of str, one thread
#                         (RAYON_NUM_THREADS=1; encode_batch was faster here
#                         than an encode() loop: 1.8 against 1.6 MB/s);
#   tiktoken              an encode() loop on the list of str, each first
#                         NFC-normalized in the loop (Qwen's normalizer;
#                         tiktoken has none); the loop was faster than
#                         encode_batch(num_threads=1): 10.7 against 5.9 MB/s.
# The peers' input is decoded Python str, not counted in their time.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$top/bin:$PATH
RUNS=${RUNS:-3}
MB=${MB:-55}
PY=$top/tests/.venv/bin/python
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
"$PY" -c 'import tokenizers, tiktoken' 2>/dev/null || {
	echo "bench: tests/.venv lacks tokenizers or tiktoken: run tests/setup-venv.sh" >&2; exit 1; }
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
zstd -q -d -c "$top/tests/data/qwen/tokenizer.json.zst" > "$w/tok.json"
"$PY" "$top/tests/oracle/hf_tokenize.py" corpus $((MB * 1000000)) > "$w/corpus.jsonl"

# The tokenizer alone, on texts in memory.
cat > "$w/harness.c" <<'EOF'
#include "lib/jsonl.h"
#include "lib/tokenizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
int main(int argc, char **argv)
{
	char *err = NULL;
	tokenizer *t = argc == 3 ? tokenizer_load(argv[1], &err) : NULL;
	jsonl_reader *r = t ? jsonl_reader_open(argv[2], &err) : NULL;
	if (!r) return fprintf(stderr, "harness: %s\n", err ? err : "usage"), 1;
	size_t n = 0, cap = 1024, bytes = 0, *off = malloc(cap * sizeof *off);
	char *buf = NULL;
	jv rec;
	off[0] = 0;
	while (jsonl_reader_next(r, &rec) > 0) {
		jv s = jv_object_get(rec, jv_string("text"));
		size_t k = (size_t)jv_string_length_bytes(jv_copy(s));
		buf = realloc(buf, bytes + k + 1);
		memcpy(buf + bytes, jv_string_value(s), k);
		bytes += k;
		jv_free(s);
		if (n + 2 > cap) off = realloc(off, (cap *= 2) * sizeof *off);
		off[++n] = bytes;
	}
	tokenizer_ids ids = {0};
	unsigned long long tokens = 0;
	double t0 = now();
	for (size_t i = 0; i < n; i++) {
		tokenizer_ids_clear(&ids);
		if (tokenizer_encode(t, buf + off[i], off[i + 1] - off[i], &ids, NULL)) return 1;
		tokens += ids.n;
	}
	printf("%.6f %zu %llu\n", now() - t0, bytes, tokens);
	return 0;
}
EOF
san=; grep -q fsanitize "$top/build/flags" && san=-fsanitize=address,undefined
${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE $san -I"$top" -o "$w/harness" "$w/harness.c" \
	"$top/build/libds.a" -ljq -lzstd -lcurl -lcrypto -lpthread -lm -lutf8proc

# The peers, RUNS times each, and the identity of their ids with ds's.
cat > "$w/peers.py" <<'EOF'
import json, statistics, sys, time, unicodedata
import tiktoken, tokenizers
from tokenizers import Tokenizer
tok_path, corpus, ds_out, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]

def timed(f):
    ts, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out

hf = Tokenizer.from_file(tok_path)
t_hf, enc = timed(lambda: hf.encode_batch(texts, add_special_tokens=False))
hf_ids = [e.ids for e in enc]

# tiktoken with Qwen's ranks: the byte-level vocab back to bytes (GPT-2's
# bytes_to_unicode inverted); a token's rank is its id, as in Qwen's own
# qwen.tiktoken. The split pattern is tokenizer.json's, unchanged.
j = json.load(open(tok_path, encoding="utf-8"))
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs, k = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + k); k += 1
byte_of = {chr(c): b for b, c in zip(bs, cs)}
ranks = {bytes(byte_of[ch] for ch in s): i for s, i in j["model"]["vocab"].items()}
pat = j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
special = {a["content"]: a["id"] for a in j["added_tokens"]}
tk = tiktoken.Encoding("qwen", pat_str=pat, mergeable_ranks=ranks, special_tokens=special)
nfc = unicodedata.normalize
t_tk, tk_ids = timed(lambda: [tk.encode(nfc("NFC", s), allowed_special="all") for s in texts])

ds_ids = [json.loads(l)["ids"] for l in open(ds_out)]
assert len(ds_ids) == len(texts), (len(ds_ids), len(texts))
print(t_hf, t_tk, sum(a != b for a, b in zip(ds_ids, hf_ids)),
      sum(a != b for a, b in zip(ds_ids, tk_ids)), len(texts),
      sum(map(len, hf_ids)), tokenizers.__version__, tiktoken.__version__)
EOF

ds-tokenize encode -q -t "$w/tok.json" "$w/corpus.jsonl" > "$w/ds1.jsonl"
ds-tokenize encode -q -j 2 -t "$w/tok.json" "$w/corpus.jsonl" > "$w/ds2.jsonl"
cmp -s "$w/ds1.jsonl" "$w/ds2.jsonl" || { echo "bench: -j 2 output differs from -j 1" >&2; exit 1; }

time_of() { # seconds, wall clock
	s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); awk "BEGIN { print $e - $s }"
}
: > "$w/t.lib"; : > "$w/t.j1"; : > "$w/t.j2"
for i in $(seq "$RUNS"); do
	"$w/harness" "$w/tok.json" "$w/corpus.jsonl" | tee "$w/lib.out" | cut -d" " -f1 >> "$w/t.lib"
	time_of ds-tokenize encode -q -t "$w/tok.json" "$w/corpus.jsonl" >> "$w/t.j1"
	time_of ds-tokenize encode -q -j 2 -t "$w/tok.json" "$w/corpus.jsonl" >> "$w/t.j2"
done
read -r t_hf t_tk d_hf d_tk lines tokens v_hf v_tk <<EOF
$("$PY" "$w/peers.py" "$w/tok.json" "$w/corpus.jsonl" "$w/ds1.jsonl" "$RUNS")
EOF
read -r _ bytes lib_tokens < "$w/lib.out"
[ "$lib_tokens" = "$tokens" ] || { echo "bench: harness counted $lib_tokens tokens, tokenizers $tokens" >&2; exit 1; }

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
t_lib=$(median "$w/t.lib"); t_j1=$(median "$w/t.j1"); t_j2=$(median "$w/t.j2")
row() { printf '  %-62s %6.2f s %7.1f MB/s %6.2f Mtok/s\n' "$1" "$2" \
	"$(awk "BEGIN { print $bytes / 1e6 / $2 }")" "$(awk "BEGIN { print $tokens / 1e6 / $2 }")"; }
ratio() { awk "BEGIN { printf \"%.2fx\", $1 / $2 }"; }
printf 'ds-tokenize bench: %.1f MB of text in %s records (%s tokens), %s runs each, medians\n' \
	"$(awk "BEGIN { print $bytes / 1e6 }")" "$lines" "$tokens" "$RUNS"
printf 'ids: ds-tokenize = HF tokenizers on %s of %s records; tiktoken differs on %s records; -j 2 = -j 1 byte for byte\n' \
	"$((lines - d_hf))" "$lines" "$d_tk"
row "ds tokenizer_encode (texts in memory, 1 thread)" "$t_lib"
row "HF tokenizers $v_hf encode_batch (texts in memory, 1 thread)" "$t_hf"
row "tiktoken $v_tk encode loop + NFC (texts in memory)" "$t_tk"
row "ds-tokenize encode (JSONL in and out, whole process)" "$t_j1"
row "ds-tokenize encode -j 2 (the same, 2 threads)" "$t_j2"
printf '  tokenizer alone: ds / HF tokenizers %s (goal >= 3x), ds / tiktoken %s (goal >= 1.5x)\n' \
	"$(ratio "$t_hf" "$t_lib")" "$(ratio "$t_tk" "$t_lib")"
printf '  whole ds-tokenize process: / HF tokenizers %s, / tiktoken %s; -j 2 / -j 1 %s (on %s CPUs)\n' \
	"$(ratio "$t_hf" "$t_j1")" "$(ratio "$t_tk" "$t_j1")" "$(ratio "$t_j1" "$t_j2")" "$(nproc)"
[ "$d_hf" = 0 ] || { echo "bench: ds-tokenize and HF tokenizers differ on $d_hf records" >&2; exit 1; }
