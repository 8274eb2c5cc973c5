#!/bin/sh
# ds-tokenize: ids identical to Hugging Face tokenizers, decoding, refusals,
# bad input, usage.
. "$(dirname "$0")/lib.sh"
FIX=$DATA/tokenize/fixture.jsonl
ORACLE=$TOP/tests/oracle/hf_tokenize.py

# The Qwen2.5 tokenizer, unpacked once for every case.
TOK=$WORK/qwen/tokenizer.json
qwen_tokenizer "$WORK/qwen"
# A small one made from it (the first 1000 ids, the merges that make them,
# the added tokens numbered on from there as tokenizers numbers them), from
# which the refusal cases are derived quickly.
jq -c '.model.vocab |= with_entries(select(.value < 1000)) | .model.merges |= .[0:744]
       | .added_tokens |= (to_entries | map(.value.id = 1000 + .key | .value))' \
	"$TOK" > "$WORK/small.json"
SMALL=$WORK/small.json

have_hf() { [ -x "$PY" ] && "$PY" -c 'import tokenizers' 2>/dev/null; }

# ids of FILE by both; cmp fails on the first record that differs.
same_ids() {
	ds-tokenize encode -q -t "$1" "$2" | jq -c .ids > ds.ids &&
	"$PY" "$ORACLE" encode "$1" "$2" > hf.ids &&
	test "$(wc -l < hf.ids)" = "$(grep -c . "$2")" &&
	cmp ds.ids hf.ids
}

# ---- identical ids ----------------------------------------------------------

if have_hf; then
ok 'hand-written fixture: every id as Hugging Face tokenizers' '
	same_ids "$TOK" "$FIX"
'

ok 'a corpus of this machine'"'"'s text (man pages in 20 languages, locales, Python, docs): every id' '
	"$PY" "$ORACLE" corpus 12000000 > corpus.jsonl &&
	test "$(wc -c < corpus.jsonl)" -gt 2000000 &&
	same_ids "$TOK" corpus.jsonl
'

ok 'every code point in the contexts of each regex class and of NFC: every id' '
	"$PY" "$ORACLE" codepoints 61 > cp.jsonl &&
	same_ids "$TOK" cp.jsonl
'

ok 'both BPE merge paths (rescan and heap) agree with tokenizers on long words' '
	"$PY" -c "
import json
for n in (1, 2, 3, 63, 64, 65, 200, 5000):
    for s in (\"ab\", \"中\", \" \", \"\\n\", \"!\", \"é\", \"🙂\", \"a b\", \"1\"):
        print(json.dumps({\"text\": s * n}))
" > long.jsonl &&
	same_ids "$TOK" long.jsonl
'

ok 'merges written as "a b" strings give the same ids as ["a", "b"] pairs' '
	jq -c ".model.merges |= map(join(\" \"))" "$SMALL" > strings.json &&
	same_ids "$SMALL" "$FIX" && mv ds.ids pairs.ids &&
	same_ids strings.json "$FIX" && cmp ds.ids pairs.ids
'

ok 'added tokens with normalized=true are matched after NFC, as tokenizers does' '
	jq -c "(.added_tokens[] | select(.content == \"<think>\" or .content == \"</think>\")).normalized = true
	       | .added_tokens += [{\"id\": 1026, \"content\": \"caf\\u00e9!\", \"single_word\": false,
	          \"lstrip\": false, \"rstrip\": false, \"normalized\": true, \"special\": false}]" \
		"$SMALL" > norm.json &&
	printf "%s\n" "{\"text\":\"a cafe\\u0301! <think>x</think> caf\\u00e9!!\"}" > t.jsonl &&
	cat "$FIX" >> t.jsonl &&
	same_ids norm.json t.jsonl &&
	grep -q 1026 ds.ids
'

ok 'decode gives what tokenizers decodes, and the text back when it is NFC' '
	"$PY" "$ORACLE" corpus 2000000 > corpus.jsonl && cat "$FIX" >> corpus.jsonl &&
	ds-tokenize encode -q -t "$TOK" corpus.jsonl | jq -c "{ids}" > ids.jsonl &&
	ds-tokenize decode -q -t "$TOK" ids.jsonl | jq -c .text > ds.txt &&
	"$PY" "$ORACLE" decode "$TOK" ids.jsonl | jq -c . > hf.txt &&
	cmp ds.txt hf.txt &&
	"$PY" -c "
import json, sys, unicodedata
n = 0
for a, b in zip(open(\"corpus.jsonl\"), open(\"ds.txt\")):
    t = json.loads(a)[\"text\"]
    if unicodedata.normalize(\"NFC\", t) == t:
        assert json.loads(b) == t, repr(t[:60])
        n += 1
assert n > 300, n
"
'

ok 'decode --replace puts U+FFFD for invalid UTF-8, as tokenizers does' '
	echo "{\"ids\":[226,100,241,225,104,9707,0]}" > bad.jsonl &&
	expect_exit 1 ds-tokenize decode -q -t "$TOK" bad.jsonl > out 2> err &&
	grep -q "ds-tokenize:bad.jsonl:1: the ids decode to invalid UTF-8" err &&
	ds-tokenize decode -q --replace -t "$TOK" bad.jsonl | jq -c .text > ds.txt &&
	"$PY" "$ORACLE" decode "$TOK" bad.jsonl > hf.txt &&
	cmp ds.txt hf.txt && grep -q "\\\\ufffd\|�" ds.txt
'
else
	skip 'ids identical to Hugging Face tokenizers' 'tests/.venv has no tokenizers'
fi

# ---- DeepSeek-R1-Distill-Qwen's tokenizer ------------------------------------
# Qwen's vocabulary and merges with R1-Distill's 22 added tokens in place of
# Qwen's (tests/data/r1distill/: the added tokens and post-processor of
# deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B's tokenizer.json, and its
# tokenizer_config.json).
R1=$WORK/r1/tokenizer.json
mkdir -p "$WORK/r1"
zstd -q -d -c "$DATA/qwen/tokenizer.json.zst" |
	jq -c --slurpfile p "$DATA/r1distill/tokenizer.patch.json" '. + $p[0]' > "$R1"

# Text around, between and inside R1-Distill's added tokens, and Qwen's
# ChatML markers that are plain text to it.
r1_markers() {
	"$PY" -c '
import json
toks = [t["content"] for t in json.load(open("'"$TOP"'/tests/data/r1distill/tokenizer.patch.json"))["added_tokens"]]
assert len(toks) == 22
lines = ["".join(toks), " ".join(toks), "\n".join(toks) + "\n"]
for t in toks:
    lines += ["a" + t + "b", " " + t + " ", t + t, "\n\n" + t + "\r\n", t[:-1], t[1:], "x" + t[:-1] + t]
lines += ["<\uff5cUser\uff5c>1+1?<\uff5cAssistant\uff5c><think>\nadd\n</think>\n\n2<\uff5cend\u2581of\u2581sentence\uff5c>",
          "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>", "\uff5c\u2581|<>", "<think></think><tool_call>x</tool_call>"]
for s in lines:
    print(json.dumps({"text": s}, ensure_ascii=False))
'
}

if have_hf; then
ok 'R1-Distill tokenizer: fixture, its added tokens in text and a corpus: every id as tokenizers' '
	r1_markers > m.jsonl && test "$(wc -l < m.jsonl)" -gt 150 &&
	same_ids "$R1" m.jsonl &&
	grep -q "151644,16,10,16,30,151645,151648,198,718,198,151649,271,17,151643" ds.ids &&
	same_ids "$R1" "$FIX" &&
	"$PY" "$ORACLE" corpus 3000000 > corpus.jsonl &&
	same_ids "$R1" corpus.jsonl
'

ok 'R1-Distill tokenizer: decode as tokenizers, added tokens back as their text' '
	r1_markers > m.jsonl &&
	ds-tokenize encode -q -t "$R1" m.jsonl | jq -c "{ids}" > ids.jsonl &&
	ds-tokenize decode -q -t "$R1" ids.jsonl | jq -c .text > ds.txt &&
	"$PY" "$ORACLE" decode "$R1" ids.jsonl | jq -c . > hf.txt &&
	cmp ds.txt hf.txt && jq -c .text m.jsonl | cmp - ds.txt
'
fi

ok 'without --template, the chat template is the tokenizer'"'"'s: qwen for Qwen, deepseekr1 for R1-Distill' '
	printf "%s\n" "{\"conversations\":[{\"from\":\"user\",\"value\":\"a\"},{\"from\":\"assistant\",\"value\":\"b\"}]}" > in.jsonl &&
	ds-tokenize -q -t "$TOK" in.jsonl | ds-tokenize inspect -s > q &&
	grep -Eq "^chat template +qwen\$" q &&
	ds-tokenize -q -t "$R1" in.jsonl | ds-tokenize inspect -s > r &&
	grep -Eq "^chat template +deepseekr1\$" r &&
	ds-tokenize -q -t "$R1" --template r1-distill in.jsonl | ds-tokenize inspect -s > r &&
	grep -Eq "^chat template +deepseekr1\$" r
'

ok 'deepseekr1 as text: BOS, bare system prompt, the empty thought trained before a reply without one' '
	printf "%s\n" "{\"system\":\"Be brief.\",\"conversations\":[{\"from\":\"user\",\"value\":\"1+1?\"},{\"from\":\"assistant\",\"value\":\"2\"},{\"from\":\"user\",\"value\":\"你好 🙂\"},{\"from\":\"assistant\",\"value\":\"<think>\\nx\\n</think>\\n\\n4\"}]}" > in.jsonl &&
	ds-tokenize -q -t "$R1" in.jsonl | ds-tokenize inspect -t "$R1" > out &&
	sed "1d; /^samples /,\$d" out > got &&
	cat > want <<-EOT &&
	<｜begin▁of▁sentence｜>Be brief.<｜User｜>1+1?<｜Assistant｜>⟦<think>

	</think>

	2<｜end▁of▁sentence｜>⟧<｜User｜>你好 🙂<｜Assistant｜>⟦<think>
	x
	</think>

	4<｜end▁of▁sentence｜>⟧

	EOT
	diff want got &&
	ds-tokenize -q -t "$R1" --mask-history in.jsonl | ds-tokenize inspect -t "$R1" | sed -n 2p > got &&
	echo "<｜begin▁of▁sentence｜>Be brief.<｜User｜>1+1?<｜Assistant｜>2<｜end▁of▁sentence｜><｜User｜>你好 🙂<｜Assistant｜>⟦<think>" > want &&
	diff want got
'

ok 'a template whose tokens the tokenizer lacks is refused, and so is one that cannot be told' '
	printf "%s\n" "{\"conversations\":[{\"from\":\"user\",\"value\":\"a\"},{\"from\":\"assistant\",\"value\":\"b\"}]}" > in.jsonl &&
	expect_exit 1 ds-tokenize -t "$TOK" --template deepseekr1 in.jsonl > out 2> err &&
	test ! -s out &&
	grep -q "^ds-tokenize: $TOK: template deepseekr1: \"<｜begin▁of▁sentence｜>\" is not one token in this tokenizer" err &&
	expect_exit 1 ds-tokenize -t "$R1" --template qwen in.jsonl > out 2> err &&
	grep -q "template qwen: \"<|im_start|>\" is not one token" err &&
	jq -c ".added_tokens = []" "$SMALL" > bare.json &&
	expect_exit 1 ds-tokenize -t bare.json in.jsonl > out 2> err &&
	grep -q "^ds-tokenize: bare.json: neither .* is a token: name the chat template with --template" err &&
	expect_exit 2 ds-tokenize -t "$R1" --template deepseek in.jsonl 2> err &&
	grep -q "unknown template .deepseek. (qwen, deepseekr1 (or r1-distill))" err
'

# ---- records ------------------------------------------------------------------

ok 'known ids (from tokenizers) for a few strings' '
	printf "%s\n" "{\"text\":\"Hello world!\"}" "{\"text\":\"<|im_start|>user\\n你好<think>\"}" \
		"{\"text\":\"\"}" > in.jsonl &&
	ds-tokenize encode -q -t "$TOK" in.jsonl | jq -c .ids > got &&
	printf "%s\n" "[9707,1879,0]" "[151644,872,198,108386,151667]" "[]" > want &&
	diff got want
'

ok 'other fields pass through unchanged; decode adds text' '
	printf "%s\n" "{\"id\":\"a\",\"text\":\"hi there\",\"meta\":{\"k\":[1,2]}}" > in.jsonl &&
	ds-tokenize encode -q -t "$TOK" in.jsonl > out &&
	test "$(jq -c "del(.ids)" out)" = "$(cat in.jsonl)" &&
	jq -c "del(.text)" out | ds-tokenize decode -q -t "$TOK" > back &&
	test "$(jq -r .text back)" = "hi there" && test "$(jq -c .meta back)" = "{\"k\":[1,2]}"
'

ok 'an "ids" already in the record is replaced where it stands; a new one goes last' '
	printf "%s\n" "{\"ids\":[1],\"text\":\"Hello world!\",\"z\":null}" "{\"text\":\"\",\"a\":{}}" > in.jsonl &&
	ds-tokenize encode -q -t "$TOK" in.jsonl > got &&
	printf "%s\n" "{\"ids\":[9707,1879,0],\"text\":\"Hello world!\",\"z\":null}" "{\"text\":\"\",\"a\":{},\"ids\":[]}" > want &&
	diff want got
'

ok 'a zstd tokenizer.json and zstd input are read as they are' '
	zstd -q -c "$FIX" > in.zst &&
	ds-tokenize encode -q -t "$DATA/qwen/tokenizer.json.zst" in.zst > a &&
	ds-tokenize encode -q -t "$TOK" "$FIX" > b && cmp a b
'

ok 'decode --skip-special leaves out <|im_start|> but keeps <think>' '
	echo "{\"ids\":[151644,872,198,151667,151645]}" |
		ds-tokenize decode -q --skip-special -t "$TOK" | jq -r .text > got &&
	printf "user\n<think>\n" > want && diff got want
'

ok 'the summary counts records and tokens' '
	ds-tokenize encode -t "$TOK" "$FIX" > out 2> err &&
	grep -q "^ds-tokenize: $(wc -l < "$FIX") records, $(jq -s "map(.ids | length) | add" out) tokens, 0 bad lines skipped" err
'

# ---- threads ------------------------------------------------------------------

ok '-j 2, 3 and 8 write the same bytes as -j 1 (encode, decode), thousands of records' '
	for i in $(seq 40); do cat "$FIX"; done > many.jsonl &&
	test "$(wc -l < many.jsonl)" -gt 1000 &&
	ds-tokenize encode -j 1 -t "$TOK" many.jsonl > j1 2> e1 &&
	for j in 2 3 8; do
		ds-tokenize encode -j $j -t "$TOK" many.jsonl > jn 2> en && cmp j1 jn && cmp e1 en || exit 1
	done &&
	ds-tokenize decode -t "$TOK" j1 > d1 &&
	ds-tokenize decode -j 4 -t "$TOK" < j1 | cmp - d1
'

ok '-j 4: a bad line stops after exactly the records before it; --skip-bad counts alike' '
	for i in $(seq 30); do cat "$FIX"; done > a.jsonl &&
	{ cat a.jsonl; echo "{\"id\":1}"; cat a.jsonl; printf "{\"text\":\"a\\377b\"}\n"; cat a.jsonl; } > bad.jsonl &&
	n=$(($(wc -l < a.jsonl) + 1)) &&
	expect_exit 1 ds-tokenize encode -q -j 1 -t "$TOK" bad.jsonl > o1 2> e1 &&
	expect_exit 1 ds-tokenize encode -q -j 4 -t "$TOK" bad.jsonl > o4 2> e4 &&
	cmp o1 o4 && cmp e1 e4 && test "$(wc -l < o4)" = $((n - 1)) &&
	grep -qx "ds-tokenize:bad.jsonl:$n: no \"text\" string" e4 &&
	ds-tokenize encode --skip-bad -j 1 -t "$TOK" bad.jsonl > o1 2> e1 &&
	ds-tokenize encode --skip-bad -j 4 -t "$TOK" bad.jsonl > o4 2> e4 &&
	cmp o1 o4 && cmp e1 e4 && grep -q "2 bad lines skipped" e4
'

if have_hf; then
ok '-j 2: the corpus, every id as Hugging Face tokenizers' '
	"$PY" "$ORACLE" corpus 4000000 > corpus.jsonl &&
	ds-tokenize encode -q -j 2 -t "$TOK" corpus.jsonl | jq -c .ids > ds.ids &&
	"$PY" "$ORACLE" encode "$TOK" corpus.jsonl > hf.ids &&
	test "$(wc -l < hf.ids)" = "$(wc -l < corpus.jsonl)" &&
	cmp ds.ids hf.ids
'
fi

# ---- bad input ----------------------------------------------------------------

ok 'a record without a text string stops the run with NAME:LINE: reason' '
	printf "%s\n" "{\"text\":\"a\"}" "{\"id\":1}" "{\"text\":\"b\"}" > bad.jsonl &&
	expect_exit 1 ds-tokenize encode -q -t "$TOK" bad.jsonl > out 2> err &&
	grep -qx "ds-tokenize:bad.jsonl:2: no \"text\" string" err &&
	test "$(wc -l < out)" = 1 &&
	printf "{\"text\":5}\n" | { expect_exit 1 ds-tokenize encode -q -t "$TOK" 2> err; } &&
	grep -qx "ds-tokenize:1: no \"text\" string" err
'

ok 'malformed JSON and invalid UTF-8 are errors; --skip-bad counts them' '
	{ echo "{\"text\":\"ok\"}"; echo "{\"text\": "; printf "{\"text\":\"a\\377b\"}\n"; echo "[1]"; } > bad.jsonl &&
	expect_exit 1 ds-tokenize encode -q -t "$TOK" bad.jsonl > out 2> err &&
	grep -q "^ds-tokenize:bad.jsonl:2: " err &&
	ds-tokenize encode --skip-bad -t "$TOK" bad.jsonl > out 2> err &&
	test "$(wc -l < out)" = 1 &&
	grep -q "invalid UTF-8" err &&
	grep -q "3 bad lines skipped" err
'

ok 'decode: ids that are not token ids are named' '
	echo "{\"ids\":[1,2,999999]}" > a.jsonl &&
	expect_exit 1 ds-tokenize decode -q -t "$TOK" a.jsonl 2> err &&
	grep -qx "ds-tokenize:a.jsonl:1: ids\\[2\\] = 999999 is not in the vocabulary" err &&
	echo "{\"ids\":[1,-2]}" > b.jsonl &&
	expect_exit 1 ds-tokenize decode -q -t "$TOK" b.jsonl 2> err &&
	grep -q "ids\\[1\\] is not a token id" err &&
	echo "{\"ids\":[1.5]}" > c.jsonl && expect_exit 1 ds-tokenize decode -q -t "$TOK" c.jsonl 2> err &&
	echo "{\"text\":\"x\"}" > d.jsonl && expect_exit 1 ds-tokenize decode -q -t "$TOK" d.jsonl 2> err &&
	grep -q "no \"ids\" list" err
'

ok 'an empty input is an error' '
	: > empty.jsonl &&
	expect_exit 1 ds-tokenize encode -q -t "$TOK" empty.jsonl 2> err &&
	grep -q "no records in the input" err
'

ok 'a full disk is an error (> /dev/full)' '
	expect_exit 1 ds-tokenize encode -q -t "$TOK" "$FIX" > /dev/full 2> err &&
	grep -q "write error.*No space left" err
'

ok 'a reader that goes away ends it quietly (| head -1)' '
	for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do cat "$FIX"; done > many.jsonl &&
	for i in 1 2 3 4 5; do cat many.jsonl; done > more.jsonl &&
	{ ds-tokenize encode -q -t "$TOK" more.jsonl 2> err; echo $? > rc; } | head -1 > /dev/null &&
	test ! -s err && { test "$(cat rc)" = 141 || test "$(cat rc)" = 0; }
'

# ---- refusals -----------------------------------------------------------------

# refuse 'jq filter' 'message': the small tokenizer changed by the filter
# must be refused, exit 1, with the message.
refuse() {
	jq -c "$1" "$SMALL" > t.json &&
	echo "{\"text\":\"x\"}" > in.jsonl &&
	expect_exit 1 ds-tokenize encode -t t.json in.jsonl > out 2> err &&
	test ! -s out && grep -q "^ds-tokenize: t.json: " err &&
	grep -qF "$2" err || { cat err; return 1; }
}

ok 'the small tokenizer itself is accepted' '
	echo "{\"text\":\"hello\"}" | ds-tokenize encode -q -t "$SMALL" > out &&
	test "$(jq -c .ids out)" = "[71,301,385]"
'

ok 'a truncated tokenizer.json is refused' '
	head -c 10000 "$SMALL" > t.json && echo "{\"text\":\"x\"}" > in.jsonl &&
	expect_exit 1 ds-tokenize encode -t t.json in.jsonl 2> err &&
	grep -q "^ds-tokenize: t.json: not valid JSON" err
'

ok 'a missing tokenizer.json is refused' '
	expect_exit 1 ds-tokenize encode -t nope.json "$FIX" 2> err &&
	grep -q "^ds-tokenize: nope.json: No such file or directory" err
'

ok 'other model types are refused: WordPiece, Unigram, WordLevel' '
	refuse ".model.type = \"WordPiece\"" "model \"WordPiece\" is not supported (only BPE)" &&
	refuse ".model = {type: \"Unigram\", vocab: [[\"a\", 0]]}" "model \"Unigram\" is not supported" &&
	refuse ".model.type = \"WordLevel\"" "model \"WordLevel\" is not supported"
'

ok 'BPE options that change the ids are refused' '
	refuse ".model.byte_fallback = true" "model: BPE with byte_fallback is not supported" &&
	refuse ".model.dropout = 0.1" "model: BPE with dropout is not supported" &&
	refuse ".model.ignore_merges = true" "ignore_merges is not supported" &&
	refuse ".model.continuing_subword_prefix = \"##\"" "continuing_subword_prefix is not supported"
'

ok 'other normalizers, pre-tokenizers and decoders are refused' '
	refuse ".normalizer = {type: \"Lowercase\"}" "normalizer \"Lowercase\" is not supported (only NFC or none)" &&
	refuse ".normalizer = {type: \"NFKC\"}" "normalizer \"NFKC\" is not supported" &&
	refuse ".normalizer = {type: \"Sequence\", normalizers: [{type: \"NFC\"}, {type: \"Strip\"}]}" "normalizer: \"Strip\" in a Sequence" &&
	refuse ".pre_tokenizer = {type: \"Metaspace\"}" "pre_tokenizer \"Metaspace\" is not supported" &&
	refuse ".pre_tokenizer.pretokenizers[0].pattern.Regex = \"\\\\s+\"" "the Split pattern is not Qwen2" &&
	refuse ".pre_tokenizer.pretokenizers[0].behavior = \"Removed\"" "Split behavior other than \"Isolated\"" &&
	refuse ".pre_tokenizer.pretokenizers[1].add_prefix_space = true" "ByteLevel with add_prefix_space" &&
	refuse ".pre_tokenizer.pretokenizers[1].use_regex = true" "ByteLevel with use_regex" &&
	refuse ".decoder = {type: \"Metaspace\"}" "decoder \"Metaspace\" is not supported (only ByteLevel)" &&
	refuse ".truncation = {max_length: 5}" "truncation is set"
'

ok 'post-processors: the ones that only add special tokens are accepted (ids are add_special_tokens=False), others refused' '
	jq -c ".post_processor = {type: \"TemplateProcessing\", single: [{SpecialToken: {id: \"<|endoftext|>\", type_id: 0}}, {Sequence: {id: \"A\", type_id: 0}}], pair: [], special_tokens: {}}" "$SMALL" > t.json &&
	echo "{\"text\":\"hello\"}" | ds-tokenize encode -q -t t.json > out && test "$(jq -c .ids out)" = "[71,301,385]" &&
	refuse ".post_processor = {type: \"Whatever\"}" "post_processor \"Whatever\" is not supported" &&
	refuse ".post_processor = {type: \"Sequence\", processors: [{type: \"ByteLevel\"}, {type: \"Other\"}]}" "post_processor \"Other\" is not supported"
'

ok 'broken vocabularies and merges are refused' '
	refuse ".model.merges += [[\"Ġ\", \"zzz\"]]" "model.merges[744]: a token of \"Ġ zzz\" is not in the vocab" &&
	refuse ".model.merges += [\"a b c\"]" "model.merges[744]: not \"a b\" nor" &&
	refuse ".model.vocab |= with_entries(select(.key != \"a\"))" "byte 0x61 has no token" &&
	refuse ".model.vocab[\"\\u4e2d\"] = 1001" "is not in the byte-level alphabet" &&
	refuse ".added_tokens[0].id = 151643" "added_tokens: \"<|im_start|>\" has id 1001, but tokenizers would give it 1000" &&
	refuse ".added_tokens[0].lstrip = true" "added_tokens[0] \"<|endoftext|>\": lstrip, rstrip and single_word are not supported"
'

# ---- usage ----------------------------------------------------------------------

ok '--help and --version print to stdout and exit 0' '
	ds-tokenize --help > out && grep -q "^usage: ds-tokenize encode" out &&
	ds-tokenize encode --help > out && grep -q "^usage: ds-tokenize encode" out &&
	ds-tokenize --version | grep -q "^ds-tokenize (ds) "
'

ok 'usage errors exit 2 with a short usage on stderr' '
	expect_exit 2 ds-tokenize 2> err && grep -q "^usage: ds-tokenize" err &&
	expect_exit 2 ds-tokenize frobnicate 2> err && grep -q "unknown subcommand" err &&
	expect_exit 2 ds-tokenize encode "$FIX" 2> err && grep -q "TOKENIZER is required" err &&
	expect_exit 2 ds-tokenize encode --bogus -t "$TOK" 2> err &&
	expect_exit 2 ds-tokenize encode --replace -t "$TOK" "$FIX" 2> err &&
	expect_exit 2 ds-tokenize encode -j 0 -t "$TOK" "$FIX" 2> err && grep -q "^ds-tokenize: -j must be" err &&
	expect_exit 2 ds-tokenize encode -j x -t "$TOK" "$FIX" 2> err &&
	expect_exit 2 ds-tokenize inspect -j 2 --json /dev/null 2> err && grep -q "^usage:" err
'

# Preference pairs (LLaMA-Factory's ranking data): both layouts give the
# same samples; what is not a pair is refused naming the line and the side.
ok 'preference pairs: sharegpt ranking and implicit-prompt layouts, bad pairs refused with the reason' '
	printf "%s\n" "{\"conversations\":[{\"from\":\"user\",\"value\":\"q\"}],\"chosen\":{\"from\":\"assistant\",\"value\":\"yes\"},\"rejected\":\"no\"}" > a.jsonl &&
	printf "%s\n" "{\"chosen\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"yes\"}],\"rejected\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"no\"}]}" > b.jsonl &&
	ds-tokenize -q -t "$TOK" a.jsonl > a.shard && ds-tokenize -q -t "$TOK" b.jsonl > b.shard &&
	ds-tokenize inspect -q --json a.shard > a.json && ds-tokenize inspect -q --json b.shard > b.json &&
	cmp a.json b.json && test "$(jq -c .rejected a.json)" = "null
true" &&
	test "$(jq -c "[.input_ids[:-3]]" a.json | sort -u | wc -l)" = 1 &&
	ds-tokenize inspect -s a.shard | grep -q "^preference pairs   1 " &&
	printf "%s\n" "{\"conversations\":[{\"from\":\"user\",\"value\":\"q\"}],\"chosen\":{\"from\":\"assistant\",\"value\":\"yes\"},\"rejected\":{\"from\":\"assistant\",\"value\":\"\"}}" > bad1 &&
	expect_exit 1 ds-tokenize -q -t "$TOK" bad1 > /dev/null 2> err && grep -q "bad1:1: rejected: conversations\[1\]: empty assistant turn" err &&
	jq -c ".rejected[0].content = \"other\"" b.jsonl > bad2 &&
	expect_exit 1 ds-tokenize -q -t "$TOK" bad2 > /dev/null 2> err && grep -q "bad2:1: the chosen and rejected sides share no prompt" err &&
	{ cat a.jsonl; echo "{\"conversations\":[{\"from\":\"user\",\"value\":\"q\"},{\"from\":\"assistant\",\"value\":\"a\"}]}"; } > mixed &&
	expect_exit 1 ds-tokenize -q -t "$TOK" mixed > /dev/null 2> err && grep -q "mixed:2: a conversation among preference pairs" err &&
	expect_exit 1 ds-tokenize -q -t "$TOK" --pack a.jsonl > /dev/null 2> err && grep -q "a preference pair: --pack" err &&
	expect_exit 1 ds-tokenize -q -t "$TOK" --cutoff-len 20 --no-truncate a.jsonl > /dev/null 2> err && grep -q "longer than the cutoff of 20" err
'
