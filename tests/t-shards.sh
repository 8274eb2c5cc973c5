#!/bin/sh
# ds-tokenize shards and inspect: input_ids and labels identical to
# LLaMA-Factory's own preprocessing (template qwen, truncation, masks,
# packing); the shard stream concatenates, and a cut-short or foreign one
# is refused; bad conversations are reported by line.
. "$(dirname "$0")/lib.sh"
CASES=$TOP/tests/oracle/sharegpt_cases.py
LF=$TOP/tests/oracle/lf_shards.py

TOKDIR=$WORK/qwen
qwen_tokenizer "$TOKDIR" || exit 1
TOK=$TOKDIR/tokenizer.json
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME=$WORK/hf TRANSFORMERS_VERBOSITY=error

# input_ids, labels and documents of a shard stream, as the oracle prints them.
ds_rows() { ds-tokenize inspect -q --json "$@" | jq -c '{input_ids, labels, docs}'; }

have_lf() { [ -x "$PY" ] && "$PY" -c 'import llamafactory' 2>/dev/null; }

# ---- identical to LLaMA-Factory ---------------------------------------------

if have_lf; then
	D=$WORK/data; mkdir -p "$D"
	"$PY" "$CASES" 300 --seed 1 > "$D/conv.jsonl"
	"$PY" "$CASES" 300 --seed 2 --layout messages > "$D/msg.jsonl"
	"$PY" "$CASES" 2500 --seed 3 > "$D/many.jsonl"
	# the dataset_info.json entries ds-sharegpt prints for its two layouts
	{ ds-sharegpt --dataset-info conv -o conv.jsonl; ds-sharegpt --dataset-info many -o many.jsonl;
	  ds-sharegpt --dataset-info msg -f messages -o msg.jsonl; } | jq -s add > "$D/dataset_info.json"

	# same NAME CUTOFF 'LF options' 'ds-tokenize options'
	same() {
		"$PY" "$LF" "$D" "$1" "$TOKDIR" --cutoff "$2" $3 > lf.jsonl 2> lf.err ||
			{ tail -20 lf.err; return 1; }
		ds-tokenize -q -t "$TOK" --cutoff-len "$2" $4 "$D/$1.jsonl" > s.shard &&
		ds_rows s.shard > ds.jsonl &&
		test -s lf.jsonl && cmp lf.jsonl ds.jsonl
	}

	ok 'qwen template, cutoff 256: input_ids and labels as LLaMA-Factory, truncated ones too' '
		same conv 256 "" "" &&
		test "$(wc -l < ds.jsonl)" = 300 &&
		ds-tokenize inspect -s s.shard > stats &&
		grep -Eq "^truncated +[1-9][0-9]* documents" stats
	'
	ok 'messages layout with system messages, default cutoff: as LLaMA-Factory' '
		same msg 8192 "" "" &&
		ds-tokenize inspect -s s.shard | grep -Eq "^truncated +0 documents"
	'
	ok '--train-on-prompt: as LLaMA-Factory'"'"'s train_on_prompt' '
		same conv 200 --train-on-prompt --train-on-prompt
	'
	ok '--mask-history: as LLaMA-Factory'"'"'s mask_history (last turn first, trained alone)' '
		same conv 200 --mask-history --mask-history
	'
	ok '--pack: the sequences of LLaMA-Factory'"'"'s neat_packing, documents kept' '
		same conv 300 --neat-packing --pack &&
		test "$(jq -c ".docs | length" ds.jsonl | sort -n | tail -1)" -gt 1
	'
	ok '--pack over 2500 records: LLaMA-Factory'"'"'s batches of 1000 packed alike' '
		same many 512 --neat-packing --pack &&
		ds-tokenize -t "$TOK" --cutoff-len 512 --pack "$D/many.jsonl" 2>&1 > /dev/null |
			grep -q "efficiency"
	'
	ok '-j 2: still LLaMA-Factory'"'"'s rows, unpacked and packed over 2500 records' '
		same conv 256 "" "-j 2" &&
		same many 512 --neat-packing "--pack -j 2"
	'
else
	skip 'input_ids and labels identical to LLaMA-Factory' 'no tests/.venv with llamafactory: run tests/setup-venv.sh'
fi

# ---- the template, as text ----------------------------------------------------

ok 'inspect shows the ChatML text, each assistant turn with its <|im_end|> and newline marked' '
	printf "%s\n" "{\"conversations\":[{\"from\":\"user\",\"value\":\"1+1?\"},{\"from\":\"assistant\",\"value\":\"2\"},{\"from\":\"user\",\"value\":\"你好 🙂\"},{\"from\":\"assistant\",\"value\":\"<think>\\nx\\n</think>\\n\\n4\"}]}" > in.jsonl &&
	ds-tokenize -q -t "$TOK" in.jsonl | ds-tokenize inspect -t "$TOK" > out &&
	sed "1d; /^samples /,\$d" out > got &&
	grep -q "^=== sample 1: [0-9]* tokens, [0-9]* trained, 1 document\$" out &&
	cat > want <<-EOT &&
	<|im_start|>system
	You are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>
	<|im_start|>user
	1+1?<|im_end|>
	<|im_start|>assistant
	⟦2<|im_end|>
	⟧<|im_start|>user
	你好 🙂<|im_end|>
	<|im_start|>assistant
	⟦<think>
	x
	</think>

	4<|im_end|>
	⟧

	EOT
	diff want got
'

ok '--system replaces the default system prompt, not a record'"'"'s own' '
	printf "%s\n" "{\"conversations\":[{\"from\":\"user\",\"value\":\"a\"},{\"from\":\"assistant\",\"value\":\"b\"}]}" \
		"{\"system\":\"Mine.\",\"conversations\":[{\"from\":\"user\",\"value\":\"a\"},{\"from\":\"assistant\",\"value\":\"b\"}]}" > in.jsonl &&
	ds-tokenize -q -t "$TOK" --system "Be terse." in.jsonl | ds-tokenize inspect -t "$TOK" > got &&
	test "$(grep -c "^Be terse.<|im_end|>" got)" = 1 &&
	test "$(grep -c "^Mine.<|im_end|>" got)" = 1 && ! grep -q "You are Qwen" got
'

# ---- the stream ---------------------------------------------------------------

two_records() {
	printf "%s\n" "{\"conversations\":[{\"from\":\"user\",\"value\":\"$1\"},{\"from\":\"assistant\",\"value\":\"$2\"}]}"
}

ok 'shards concatenated with cat read back as one stream' '
	two_records a b > a.jsonl && two_records c d > b.jsonl &&
	ds-tokenize -q -t "$TOK" a.jsonl > a.shard && ds-tokenize -q -t "$TOK" -o b.shard b.jsonl &&
	test ! -e b.shard.tmp &&
	{ ds_rows a.shard; ds_rows b.shard; } > want &&
	cat a.shard b.shard | ds_rows > got &&
	test "$(wc -l < got)" = 2 && diff want got &&
	cat a.jsonl b.jsonl | ds-tokenize -q -t "$TOK" | ds_rows > one && diff want one
'

ok 'a cut-short stream is an error, never an end' '
	"$PY" "$CASES" 50 > in.jsonl 2>/dev/null || printf "%s\n" "$(two_records "$(seq 1 3000 | tr "\n" " ")" x)" > in.jsonl &&
	ds-tokenize -q -t "$TOK" in.jsonl > s.shard &&
	n=$(wc -c < s.shard) &&
	for cut in 1 10 100 $((n / 2)) $((n - 1)); do
		head -c $cut s.shard > cut.shard &&
		expect_exit 1 ds-tokenize inspect --json cut.shard > /dev/null 2> err &&
		grep -Eq "truncated|not a shard" err || exit 1
	done
'

ok 'a shard made with another tokenizer is refused, alone or concatenated' '
	jq -c ".model.vocab |= with_entries(select(.value < 1000)) | .model.merges |= .[0:744]
	       | .added_tokens |= (to_entries | map(.value.id = 1000 + .key | .value))" "$TOK" > small.json &&
	two_records a b > a.jsonl &&
	ds-tokenize -q -t small.json a.jsonl > small.shard &&
	ds-tokenize -q -t "$TOK" a.jsonl > qwen.shard &&
	expect_exit 1 ds-tokenize inspect -t "$TOK" small.shard > /dev/null 2> err &&
	grep -q "another tokenizer" err &&
	cat qwen.shard small.shard > mixed.shard &&
	expect_exit 1 ds-tokenize inspect --json mixed.shard > /dev/null 2> err &&
	grep -q "another tokenizer" err
'

ok 'the same tokenizer in another layout (pretty, merges as strings) has the same fingerprint' '
	jq ".model.merges |= map(join(\" \"))" "$TOK" > other.json &&
	two_records a b > a.jsonl &&
	ds-tokenize -q -t "$TOK" a.jsonl > s.shard &&
	ds-tokenize inspect -t other.json s.shard > /dev/null &&
	ds-tokenize -q -t other.json a.jsonl | cmp - s.shard
'

ok 'the stream streams through a pipe and the output is the same byte for byte each run' '
	"$PY" "$CASES" 40 > in.jsonl 2>/dev/null || two_records a b > in.jsonl &&
	ds-tokenize -q -t "$TOK" --cutoff-len 128 --pack < in.jsonl > a.shard &&
	cat in.jsonl | ds-tokenize -q -t "$TOK" --cutoff-len 128 --pack | cmp - a.shard &&
	ds-tokenize inspect -s a.shard | grep -q "^packing efficiency"
'

# ---- threads ------------------------------------------------------------------

ok '-j 2, 3 and 8 write the same shard bytes as -j 1, packed or not, and the same summary' '
	"$PY" "$CASES" 700 --seed 5 > in.jsonl 2>/dev/null ||
		for i in $(seq 700); do two_records "q $i $(seq $i)" "a $i"; done > in.jsonl &&
	for opts in "--cutoff-len 256" "--cutoff-len 512 --pack" "--cutoff-len 200 --mask-history"; do
		ds-tokenize -t "$TOK" $opts -j 1 in.jsonl > j1.shard 2> e1 &&
		for j in 2 3 8; do
			ds-tokenize -t "$TOK" $opts -j $j in.jsonl > jn.shard 2> en &&
			cmp j1.shard jn.shard && cmp e1 en || exit 1
		done
	done &&
	ds-tokenize inspect -s j1.shard | grep -Eq "^samples +700$"
'

ok '-j 4: a bad conversation stops the stream where -j 1 stops it' '
	for i in $(seq 300); do two_records "q $i" "a $i"; done > good.jsonl &&
	{ cat good.jsonl; echo "{\"conversations\":[]}"; cat good.jsonl; } > in.jsonl &&
	expect_exit 1 ds-tokenize -q -t "$TOK" -j 1 in.jsonl > a.shard 2> e1 &&
	expect_exit 1 ds-tokenize -q -t "$TOK" -j 4 in.jsonl > b.shard 2> e4 &&
	cmp e1 e4 && grep -q "^ds-tokenize:in.jsonl:301: no turns" e4 &&
	ds-tokenize -q -t "$TOK" --skip-bad -j 4 in.jsonl > c.shard &&
	ds-tokenize -q -t "$TOK" --skip-bad -j 1 in.jsonl | cmp - c.shard &&
	ds-tokenize inspect -s c.shard | grep -Eq "^samples +600$"
'

# ---- bad input ------------------------------------------------------------------

ok 'roles out of order, empty turns, no assistant turn, invalid UTF-8: NAME:LINE, exit 1' '
	two_records a b > good.jsonl &&
	printf "%s\n" "{\"conversations\":[{\"from\":\"assistant\",\"value\":\"a\"},{\"from\":\"user\",\"value\":\"b\"}]}" > order.jsonl &&
	printf "%s\n" "{\"conversations\":[{\"from\":\"user\",\"value\":\"\"},{\"from\":\"assistant\",\"value\":\"b\"}]}" > empty.jsonl &&
	printf "%s\n" "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}" > odd.jsonl &&
	printf "{\"conversations\":[{\"from\":\"user\",\"value\":\"a\\377\"},{\"from\":\"assistant\",\"value\":\"b\"}]}\n" > utf.jsonl &&
	printf "%s\n" "{\"text\":\"no conversation\"}" > none.jsonl &&
	for c in "order:roles out of order" "empty:empty user turn" "odd:the last turn is not the assistant" \
		 "utf:UTF-8" "none:no \"conversations\" or \"messages\""; do
		f=${c%%:*} why=${c#*:} &&
		cat good.jsonl $f.jsonl > in.jsonl &&
		expect_exit 1 ds-tokenize -q -t "$TOK" in.jsonl > /dev/null 2> err &&
		grep "^ds-tokenize:in.jsonl:2: " err | grep -q "$why" || { echo "$f:"; cat err; exit 1; }
	done &&
	cat good.jsonl order.jsonl empty.jsonl good.jsonl > in.jsonl &&
	ds-tokenize -t "$TOK" --skip-bad in.jsonl 2> err | ds_rows > rows &&
	test "$(wc -l < rows)" = 2 && grep -q "2 bad lines skipped" err
'

ok 'with --no-truncate a conversation longer than the cutoff is bad input' '
	two_records "$(seq 1 200 | tr "\n" " ")" x > long.jsonl &&
	expect_exit 1 ds-tokenize -q -t "$TOK" --cutoff-len 64 --no-truncate long.jsonl > /dev/null 2> err &&
	grep -q "longer than the cutoff of 64" err &&
	ds-tokenize -t "$TOK" --cutoff-len 64 long.jsonl 2> err | ds_rows > rows &&
	test "$(jq ".input_ids | length" rows)" = 64 && grep -q "1 truncated" err
'

ok 'a full disk is an error' '
	two_records a b > a.jsonl &&
	expect_exit 1 ds-tokenize -q -t "$TOK" a.jsonl > /dev/full
'

ok 'usage errors exit 2' '
	expect_exit 2 ds-tokenize -t "$TOK" --train-on-prompt --mask-history /dev/null &&
	expect_exit 2 ds-tokenize -t "$TOK" --template nosuch /dev/null &&
	expect_exit 2 ds-tokenize -t "$TOK" --cutoff-len 0 /dev/null &&
	expect_exit 2 ds-tokenize encode -t "$TOK" --pack /dev/null &&
	expect_exit 2 ds-tokenize inspect /dev/null &&
	expect_exit 2 ds-tokenize -t "$TOK" --json /dev/null
'

# The header has its own CRC-32: a flipped byte there (the vocabulary size)
# is refused, as flag bits no version defines are.
ok 'a flipped byte in the header, or unknown flag bits, are refused' '
	echo "{\"conversations\":[{\"from\":\"user\",\"value\":\"q\"},{\"from\":\"assistant\",\"value\":\"a\"}]}" > c.jsonl &&
	ds-tokenize -q -t "$TOK" c.jsonl > s.shard && zstd -q -d -c s.shard > raw &&
	ds-tokenize inspect -q --json raw > /dev/null &&
	python3 -c "
import struct, sys, zlib
b = bytearray(open(\"raw\", \"rb\").read())
v = bytearray(b); v[48] ^= 1; open(\"vocab\", \"wb\").write(v)
f = bytearray(b); struct.pack_into(\"<I\", f, 56, 128)
struct.pack_into(\"<I\", f, 76, zlib.crc32(bytes(f[:76]))); open(\"flags\", \"wb\").write(f)
d = bytearray(b); at = 80; struct.pack_into(\"<I\", d, at + 20, 8)
t, n = struct.unpack_from(\"<II\", d, at + 4)
struct.pack_into(\"<I\", d, at + 12, zlib.crc32(bytes(d[at + 16:at + 16 + 8 * n + 5 * t]))); open(\"docflags\", \"wb\").write(d)
" &&
	expect_exit 1 ds-tokenize inspect -q --json vocab > /dev/null 2> err && grep -q "corrupt header (checksum mismatch)" err &&
	expect_exit 1 ds-tokenize inspect -q --json flags > /dev/null 2> err && grep -q "header flags 0x80: bits this program does not know" err &&
	expect_exit 1 ds-tokenize inspect -q --json docflags > /dev/null 2> err && grep -q "sample 1: document flags 0x8" err
'
