#!/bin/sh
# lib/safetensors.c against the reference (the safetensors package, torch,
# transformers, huggingface_hub in tests/.venv): what Python writes the C
# reader reads value for value; what the C writer writes Python loads, with
# torch's own bf16/f16 rounding, sharded and indexed as transformers does;
# a broken file is refused where the reference refuses it, by name.
. "$(dirname "$0")/lib.sh"
T=$TOP/build/tests/test_safetensors
OR=$TOP/tests/oracle
CORPUS=$TOP/tests/fuzz/corpus/safetensors
export HF_HUB_OFFLINE=1 HF_HOME=$WORK/hf TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1

have_ref() { [ -x "$PY" ] && "$PY" -c 'import safetensors, torch, transformers, huggingface_hub' 2>/dev/null; }

if ! [ -x "$T" ]; then
	skip 'safetensors against the reference' 'build/tests/test_safetensors not built: make units'
	exit 0
fi
if ! have_ref; then
	skip 'safetensors against the reference' 'no tests/.venv with safetensors, torch and transformers: run tests/setup-venv.sh'
	exit 0
fi

# The fixtures, written once by the reference writers (tests/oracle/st_make.py).
FIX=$WORK/fix
"$PY" "$OR/st_make.py" "$FIX" > "$WORK/make.log" 2>&1 || { cat "$WORK/make.log"; exit 1; }

# same_dump PATH: the C reader and the reference print the same tensors.
same_dump() {
	"$PY" "$OR/st_dump.py" "$1" > want && "$T" dump "$1" > got && test -s got && cmp want got
}

# ---- reading what Python wrote ----------------------------------------------

ok 'F32, F16, BF16 files from save_file: names, order, shapes, every value (edges, NaNs, random bits)' '
	for f in f16 bf16 f32; do same_dump "$FIX/$f.safetensors" || exit 1; done &&
	grep -q "^d.scalar F32 \[\] 3fc00000\$" got && grep -q "^e.empty F32 \[0,3\]\$" got
'
ok 'a file of mixed dtypes: F32/F16/BF16 converted, I8 and U8 listed' '
	same_dump "$FIX/mixed.safetensors" && grep -q "^i8 I8 \[7\] -\$" got
'
ok 'save_pretrained of a tiny Qwen2: one file, the same values' '
	same_dump "$FIX/qwen" && test "$(wc -l < got)" = 27
'
ok 'save_pretrained sharded (7 shards and an index, F32; 6 in BF16): the same values, shard by shard' '
	test -e "$FIX/qwen-sharded/model-00007-of-00007.safetensors" &&
	same_dump "$FIX/qwen-sharded" && same_dump "$FIX/qwen-bf16-sharded"
'

# ---- Python reading what C wrote ------------------------------------------------

# check SRC DTYPE MAX [--transformers]: convert with the C writer, check with the reference.
check() {
	rm -rf out && mkdir out && "$T" convert "$1" out "$2" "$3" &&
	if [ "${4:-}" = --transformers ]; then cp "$1/config.json" out/; fi &&
	"$PY" "$OR/st_check.py" "$1" out "$2" "$3" ${4:-}
}

for dt in F32 BF16 F16; do
	ok "C writer, $dt: torch's own rounding of every value, headers byte for byte as save()" '
		check "$FIX/f32.safetensors" '$dt' 0 && check "$FIX/f32-nonan.safetensors" '$dt' 0
	'
	ok "C writer, $dt, sharded: shards and index as save_pretrained's, loadable shard by shard" '
		check "$FIX/f32.safetensors" '$dt' 1500 && test -e out/model-00003-of-00003.safetensors &&
		check "$FIX/f32-nonan.safetensors" '$dt' 700 && test -e out/model.safetensors.index.json
	'
done
ok 'C writer, a tiny Qwen2 to BF16 in 3 shards: transformers from_pretrained loads torch'"'"'s bf16 of every weight' '
	check "$FIX/qwen" BF16 20000 --transformers && test -e out/model-00003-of-00003.safetensors
'
ok 'C writer over an earlier save of another layout: the stale files go' '
	mkdir out && "$T" convert "$FIX/qwen" out F32 20000 && test -e out/model.safetensors.index.json &&
	"$T" convert "$FIX/qwen" out F32 0 && test "$(ls out)" = model.safetensors &&
	"$PY" "$OR/st_check.py" "$FIX/qwen" out F32 0
'

# ---- broken files ------------------------------------------------------------------

ok 'the seed corpus: the C reader refuses what the reference refuses (strict-*: more), by file name' '
	"$PY" "$OR/st_accepts.py" "$CORPUS"/* > ref &&
	for f in "$CORPUS"/*; do
		n=$(basename "$f")
		if "$T" dump "$f" > /dev/null 2> err; then echo "$n ok"
		else grep -q "^test_safetensors: $f: " err || { cat err; exit 1; }; echo "$n refused"; fi
	done > mine &&
	sed "/^strict-/s/ ok\$/ refused/" ref > want && diff want mine &&
	grep -q "^bad-overlap refused" mine && grep -q "^valid-mixed ok" mine
'
ok 'a file cut short anywhere is refused, by both' '
	f=$FIX/mixed.safetensors; n=$(wc -c < "$f") &&
	for cut in 0 4 8 9 20 100 $((n - 100)) $((n - 1)); do
		head -c $cut "$f" > cut.safetensors &&
		expect_exit 1 "$T" dump cut.safetensors > /dev/null 2> err &&
		grep -Eq "cut.safetensors: (truncated|header length|header is not JSON|tensor .*run past the end)" err || { cat err; exit 1; }
		"$PY" "$OR/st_accepts.py" cut.safetensors | grep -q " refused\$" || exit 1
	done
'
ok 'a sharded dir with a shard missing: refused, naming the shard' '
	cp -r "$FIX/qwen-sharded" d && rm d/model-00003-of-00007.safetensors &&
	expect_exit 1 "$T" dump d > /dev/null 2> err &&
	grep -q "d/model-00003-of-00007.safetensors: No such file or directory (a shard that model.safetensors.index.json names)" err
'
ok 'an index naming a tensor its shard does not hold: refused, naming both' '
	cp -r "$FIX/qwen-sharded" d &&
	jq ".weight_map[\"model.extra\"] = \"model-00001-of-00007.safetensors\"" "$FIX/qwen-sharded/model.safetensors.index.json" \
		> d/model.safetensors.index.json &&
	expect_exit 1 "$T" dump d > /dev/null 2> err &&
	grep -q "tensor model.extra: its shard model-00001-of-00007.safetensors does not hold it" err
'
