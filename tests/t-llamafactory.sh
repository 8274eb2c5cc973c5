#!/bin/sh
# ds-sharegpt's output, with the dataset_info.json entry it prints, loads
# through LLaMA-Factory's own data loader and template (the llamafactory
# package, tests/requirements.txt), and LLaMA-Factory sees exactly the
# conversations we meant: the user turn, and the assistant turn as the
# trained tokens.
. "$(dirname "$0")/lib.sh"
IN=$DATA/sharegpt/judged.jsonl

if ! [ -x "$PY" ] || ! "$PY" -c 'import llamafactory' 2>/dev/null; then
	skip 'LLaMA-Factory loads ds-sharegpt output' 'no tests/.venv with llamafactory: run tests/setup-venv.sh'
	exit 0
fi
TOK=$WORK/tok
qwen_tokenizer "$TOK" || exit 1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME=$WORK/hf TRANSFORMERS_VERBOSITY=error

# Under the sanitizers (SAN=1) the cases that only vary LLaMA-Factory's
# switches over ds-tokenize code the others run already are left out (each
# LF call costs ~10 s; the plain run has them all).
full=1; [ "${SAN:-0}" = 1 ] && full=0

# What LLaMA-Factory should see, derived from the input by jq alone.
want_from_judged='select((.judge.verdict // "correct") == "correct" and .teacher.finish_reason != "length")
 | (.teacher.reasoning // "" | sub("^\\s+";"") | sub("\\s+$";"")) as $r
 | (.teacher.content // "" | sub("^\\s+";"") | sub("\\s+$";"")) as $c
 | select($r != "" and $c != "" and ($r|contains("think")|not))
 | {user: .problem, trained: ("<think>\n" + $r + "\n</think>\n\n" + $c + "<|im_end|>\n")}'

for fmt in sharegpt messages alpaca; do
	ok "LLaMA-Factory loads --format $fmt and sees every conversation whole" '
		mkdir data &&
		ds-sharegpt -q -f '$fmt' -o data/distill.jsonl "$IN" &&
		ds-sharegpt --dataset-info distill -f '$fmt' -o data/distill.jsonl > data/dataset_info.json &&
		"$PY" "$TOP/tests/oracle/lf_load.py" data distill "$TOK" > lf.jsonl 2> lf.err ||
			{ cat lf.err; false; } &&
		jq -c "{user: .prompt[0].content, trained: .trained_text}" lf.jsonl > got &&
		jq -c "$want_from_judged" "$IN" > want &&
		test "$(wc -l < want)" = 4 &&
		diff got want &&
		test "$(jq -r ".prompt | length" lf.jsonl | sort -u)" = 1
	'
done

# Once dataset_info names tags, LLaMA-Factory sets those it does not name
# to None, and a conversation with a system turn fails its role check and
# is dropped: ds-sharegpt names them all. A system turn in the conversation
# (as a user's own file may have it) is LLaMA-Factory's system prompt.
ok 'LLaMA-Factory keeps a conversation that opens with a system turn, in the sharegpt and messages layouts' '
	mkdir data &&
	ds-sharegpt -q -f sharegpt -o s.jsonl "$IN" &&
	jq -c "if input_line_number == 1 then .conversations = [{from: \"system\", value: \"Be brief.\"}] + .conversations | del(.system) else . end" s.jsonl > data/s.jsonl &&
	ds-sharegpt -q -f messages -o m.jsonl "$IN" &&
	jq -c "if input_line_number == 2 then .messages = [{role: \"system\", content: \"Be terse.\"}] + .messages else . end" m.jsonl > data/m.jsonl &&
	{ ds-sharegpt --dataset-info s -f sharegpt -o data/s.jsonl; ds-sharegpt --dataset-info m -f messages -o data/m.jsonl; } |
		jq -s "add" > data/dataset_info.json &&
	"$PY" "$TOP/tests/oracle/lf_load.py" data s "$TOK" > lf-s.jsonl 2> lf.err || { cat lf.err; false; } &&
	"$PY" "$TOP/tests/oracle/lf_load.py" data m "$TOK" > lf-m.jsonl 2> lf.err || { cat lf.err; false; } &&
	test "$(wc -l < lf-s.jsonl)" = 4 && test "$(wc -l < lf-m.jsonl)" = 4 &&
	test "$(jq -r .system lf-s.jsonl | head -1)" = "Be brief." &&
	test "$(jq -r .system lf-m.jsonl | sed -n 2p)" = "Be terse."
'

# LLaMA-Factory's StringFormatter puts the user's text in for {{content}},
# then replaces {{idx}} in the result: a user's own "{{idx}}" becomes "0".
# ds-tokenize keeps the text as written; with that one difference made by
# hand, the ids are LLaMA-Factory's.
ok 'a user'"'"'s own {{idx}}: LLaMA-Factory writes 0 (its bug), ds-tokenize keeps the text; all else the same ids' '
	mkdir ph &&
	cat > ph/p.jsonl <<-EOF &&
	{"system":"","conversations":[{"from":"user","value":"A Vue template: {{idx}}: {{item}} and {{content}}?"},{"from":"assistant","value":"It prints {{idx}} then {{item}}."}]}
	{"system":"","conversations":[{"from":"user","value":"What is 2+2?"},{"from":"assistant","value":"4"}]}
	EOF
	ds-sharegpt --dataset-info p -o p.jsonl > ph/dataset_info.json &&
	"$PY" "$TOP/tests/oracle/lf_shards.py" ph p "$TOK" --template qwen --cutoff 256 > lf.jsonl 2> lf.err ||
		{ tail -5 lf.err; false; } &&
	rows() { ds-tokenize -q -t "$TOK/tokenizer.json" --template qwen --cutoff-len 256 "$1" |
		ds-tokenize inspect -q --json | jq -c "{input_ids, labels, docs}"; } &&
	text() { jq -c "{ids: .input_ids}" | ds-tokenize decode -q -t "$TOK/tokenizer.json" | jq -r .text; } &&
	rows ph/p.jsonl > ds.jsonl &&
	sed -n 2p lf.jsonl > a && sed -n 2p ds.jsonl > b && cmp a b &&
	head -1 ds.jsonl | text | grep -qF "A Vue template: {{idx}}: {{item}} and {{content}}?" &&
	head -1 ds.jsonl | text | grep -qF "It prints {{idx}} then {{item}}." &&
	head -1 lf.jsonl | text | grep -qF "A Vue template: 0: {{item}} and {{content}}?" &&
	head -1 ph/p.jsonl | sed "s/{{idx}}: {{item}} and/0: {{item}} and/" > as-lf.jsonl &&
	rows as-lf.jsonl > b && head -1 lf.jsonl > a && cmp a b
'

# ds-teacher --logprobs puts teacher.logprobs into the assistant message
# (issue #21), as one JSON string: LLaMA-Factory reads a message's role and content only, so
# the file loads as it does without them, token for token.
LP='{"k":2,"tokens":["Hel",[226],[136,154]],"logprob":[-0.01,-1.5,-9999],"top":[["Hel",-0.01,"He",-4.60517],[[226],-1.5,"x",-2],[[136,154],-9999,"y",-9999]]}'
export LP
ok 'LLaMA-Factory loads a file with logprobs in its messages exactly as one without' '
	mkdir data plain &&
	jq -c ".teacher.logprobs = (env.LP | fromjson)" "$IN" > in.jsonl &&
	ds-sharegpt -q -o data/d.jsonl in.jsonl &&
	test "$(jq -c ".conversations[1].logprobs | fromjson" data/d.jsonl | sort -u)" = "$LP" &&
	ds-sharegpt --dataset-info d -o data/d.jsonl > data/dataset_info.json &&
	"$PY" "$TOP/tests/oracle/lf_load.py" data d "$TOK" > lf.jsonl 2> lf.err || { cat lf.err; false; } &&
	ds-sharegpt -q -o plain/d.jsonl "$IN" && cp data/dataset_info.json plain/ &&
	"$PY" "$TOP/tests/oracle/lf_load.py" plain d "$TOK" > lf-plain.jsonl 2> lf.err || { cat lf.err; false; } &&
	test "$(wc -l < lf.jsonl)" = 4 &&
	diff lf.jsonl lf-plain.jsonl
'

ok 'with --system, LLaMA-Factory puts our system prompt in the ChatML header' '
	mkdir data &&
	ds-sharegpt -q -s "You are a careful mathematician." -o data/d.jsonl "$IN" &&
	ds-sharegpt --dataset-info d -o data/d.jsonl > data/dataset_info.json &&
	"$PY" "$TOP/tests/oracle/lf_load.py" data d "$TOK" > lf.jsonl 2> lf.err || { cat lf.err; false; } &&
	test "$(jq -r .system lf.jsonl | sort -u)" = "You are a careful mathematician." &&
	jq -r .text lf.jsonl | head -1 | grep -qx "<|im_start|>system" &&
	jq -r .text lf.jsonl | sed -n 2p | grep -qx "You are a careful mathematician.<|im_end|>"
'

ok 'without --system, the qwen template falls back to its default system prompt' '
	mkdir data &&
	ds-sharegpt -q -o data/d.jsonl "$IN" &&
	ds-sharegpt --dataset-info d -o data/d.jsonl > data/dataset_info.json &&
	"$PY" "$TOP/tests/oracle/lf_load.py" data d "$TOK" > lf.jsonl 2> lf.err || { cat lf.err; false; } &&
	jq -r .text lf.jsonl | sed -n 2p | grep -q "^You are Qwen, created by Alibaba Cloud"
'

# ---- DeepSeek-R1-Distill-Qwen: template deepseekr1 ------------------------------
# ds-tokenize's shards for the R1-Distill tokenizer = LLaMA-Factory's own
# preprocessing with template deepseekr1 (a ReasoningTemplate, at its
# defaults enable_thinking true, preserve_thinking false), on records whose
# assistant turns take every shape that its thought handling tells apart
# (sharegpt_cases.py --reasoning).
#
# The tokenizer LLaMA-Factory loads is tokenizer.json as it is: the
# tokenizer_config.json that R1-Distill ships names LlamaTokenizerFast, and
# transformers 5 builds that class with a Metaspace pre-tokenizer of its own
# in place of the file's ByteLevel one, so that "hi <think>\n" loses its
# spaces and newlines (huggingface/transformers#45488). The oracle's copy
# names PreTrainedTokenizerFast instead; its ids are tokenizers', which
# tests/t-tokenize.sh holds ds-tokenize to.
R1=$WORK/r1
R1LF=$WORK/r1-lf
mkdir -p "$R1" "$R1LF"
zstd -q -d -c "$DATA/qwen/tokenizer.json.zst" |
	jq -c --slurpfile p "$DATA/r1distill/tokenizer.patch.json" '. + $p[0]' > "$R1/tokenizer.json"
cp "$DATA/r1distill/tokenizer_config.json" "$R1/"
cp "$R1/tokenizer.json" "$R1LF/"
jq '.tokenizer_class = "PreTrainedTokenizerFast"' "$DATA/r1distill/tokenizer_config.json" > "$R1LF/tokenizer_config.json"
CASES=$TOP/tests/oracle/sharegpt_cases.py
D=$WORK/r1data; mkdir -p "$D"
"$PY" "$CASES" 300 --seed 4 --reasoning > "$D/r1.jsonl"
"$PY" "$CASES" 300 --seed 5 --reasoning --layout messages > "$D/r1msg.jsonl"
"$PY" "$CASES" 1500 --seed 6 --reasoning > "$D/r1many.jsonl"
# Preference pairs from the same records: each conversation's last reply is
# chosen, the next record's last reply rejected (histories of 0 to 3 turns).
jq -s -c 'range(length) as $i | .[$i] as $a | .[($i + 1) % length] as $b
	| {conversations: $a.conversations[:-1], chosen: $a.conversations[-1], rejected: $b.conversations[-1]}
	+ if $a.system then {system: $a.system} else {} end' "$D/r1.jsonl" > "$D/r1pairs.jsonl"
{ ds-sharegpt --dataset-info r1 -o r1.jsonl; ds-sharegpt --dataset-info r1many -o r1many.jsonl;
  ds-sharegpt --dataset-info r1msg -f messages -o r1msg.jsonl;
  ds-sharegpt --dataset-info r1pairs -f dpo -o r1pairs.jsonl; } | jq -s add > "$D/dataset_info.json"

# r1_same NAME CUTOFF 'LF options' 'ds-tokenize options': LF's rows
# (lf.jsonl) and ds-tokenize's (ds.jsonl) are the same bytes.
r1_same() {
	"$PY" "$TOP/tests/oracle/lf_shards.py" "$D" "$1" "$R1LF" --template deepseekr1 --cutoff "$2" $3 \
		> lf.jsonl 2> lf.err || { tail -20 lf.err; return 1; }
	ds-tokenize -q -t "$R1/tokenizer.json" --template deepseekr1 --cutoff-len "$2" $4 "$D/$1.jsonl" > s.shard &&
	ds-tokenize inspect -q --json s.shard | jq -c '{input_ids, labels, docs}' > ds.jsonl &&
	test -s lf.jsonl && cmp lf.jsonl ds.jsonl
}

# pairs_same TOKDIR TEMPLATE CUTOFF 'options': LF's pairwise rows (stage dpo)
# and ds-tokenize's pair samples are the same bytes, chosen then rejected.
pairs_same() {
	"$PY" "$TOP/tests/oracle/lf_shards.py" "$D" r1pairs "$1" --template "$2" --cutoff "$3" --pairwise $4 \
		> lf.jsonl 2> lf.err || { tail -20 lf.err; return 1; }
	ds-tokenize -q -t "$1/tokenizer.json" --template "$2" --cutoff-len "$3" $4 "$D/r1pairs.jsonl" > s.shard &&
	ds-tokenize inspect -q --json s.shard | jq -c 'del(.truncated)' > ds.jsonl &&
	test "$(wc -l < ds.jsonl)" = 600 && cmp lf.jsonl ds.jsonl
}

# How many rows have the empty thought <think>\n\n</think>\n\n trained.
EMPTY_THOUGHT='151648,271,151649,271'
trained_empty() { jq -c '[.labels[] | select(. != -100)] | tostring' "$1" | grep -c "$EMPTY_THOUGHT" || true; }

ok 'deepseekr1, cutoff 256: input_ids and labels as LLaMA-Factory, truncated ones too' '
	r1_same r1 256 "" "" &&
	test "$(wc -l < ds.jsonl)" = 300 &&
	ds-tokenize inspect -s s.shard > stats &&
	grep -Eq "^truncated +[1-9][0-9]* documents" stats &&
	grep -Eq "^chat template +deepseekr1\$" stats &&
	test "$(jq -c ".input_ids[0]" ds.jsonl | sort -u)" = 151646 &&
	test "$(trained_empty ds.jsonl)" -gt 50
'
[ $full = 1 ] && ok 'deepseekr1, messages layout with system messages, default cutoff: as LLaMA-Factory' '
	r1_same r1msg 8192 "" "" &&
	ds-tokenize inspect -s s.shard | grep -Eq "^truncated +0 documents"
'
[ $full = 1 ] && ok 'deepseekr1 --mask-history: history thoughts dropped (discarding_history_cot), as LLaMA-Factory' '
	r1_same r1 8192 --mask-history --mask-history &&
	r1_same r1 200 --mask-history --mask-history
'
[ $full = 1 ] && ok 'deepseekr1 --train-on-prompt: as LLaMA-Factory' '
	r1_same r1 200 --train-on-prompt --train-on-prompt
'
ok 'deepseekr1 --pack: LLaMA-Factory'"'"'s neat_packing sequences, 1500 records, -j 2 too' '
	r1_same r1many 512 --neat-packing --pack &&
	test "$(jq -c ".docs | length" ds.jsonl | sort -n | tail -1)" -gt 1 &&
	r1_same r1many 512 --neat-packing "--pack -j 2"
'
ok 'the alias r1-distill, and no --template with this tokenizer, make the same shards' '
	ds-tokenize -q -t "$R1/tokenizer.json" --template deepseekr1 "$D/r1.jsonl" > a.shard &&
	ds-tokenize -q -t "$R1/tokenizer.json" --template r1-distill "$D/r1.jsonl" > b.shard &&
	ds-tokenize -q -t "$R1/tokenizer.json" "$D/r1.jsonl" > c.shard &&
	cmp a.shard b.shard && cmp a.shard c.shard
'
[ $full = 1 ] && ok 'deepseekr1 --preserve-thinking: history thoughts kept under mask_history, as LLaMA-Factory'"'"'s preserve_thinking' '
	r1_same r1 8192 "--mask-history --preserve-thinking" "--mask-history --preserve-thinking" &&
	r1_same r1 200 "--mask-history --preserve-thinking" "--mask-history --preserve-thinking" &&
	r1_same r1msg 8192 --preserve-thinking --preserve-thinking
'
[ $full = 1 ] && ok 'deepseekr1 --no-thinking: every thought cut, the empty thought untrained in the prompt, as enable_thinking false' '
	r1_same r1 8192 --no-thinking --no-thinking &&
	test "$(trained_empty ds.jsonl)" = 0 &&
	test "$(jq -c ".input_ids | tostring" ds.jsonl | grep -c "$EMPTY_THOUGHT")" -gt 50 &&
	r1_same r1 200 "--no-thinking --mask-history" "--no-thinking --mask-history" &&
	r1_same r1 8192 "--no-thinking --preserve-thinking --mask-history" "--no-thinking --preserve-thinking --mask-history" &&
	r1_same r1many 512 "--no-thinking --neat-packing" "--no-thinking --pack -j 2" &&
	r1_same r1msg 8192 "--no-thinking --train-on-prompt" "--no-thinking --train-on-prompt"
'
ok 'preference pairs (stage dpo): both sides as LLaMA-Factory'"'"'s pairwise processor, qwen and deepseekr1, cut to the cutoff too' '
	pairs_same "$TOK" qwen 100 "" &&
	ds-tokenize inspect -s s.shard | grep -Eq "^truncated +[1-9][0-9]* documents" &&
	pairs_same "$R1LF" deepseekr1 8192 "" &&
	ds-tokenize inspect -s s.shard | grep -q "^preference pairs   300 " &&
	pairs_same "$R1LF" deepseekr1 64 --preserve-thinking &&
	pairs_same "$R1LF" deepseekr1 200 "--no-thinking --preserve-thinking"
'
# The comparison must see thought handling: LF with other thought settings
# gives other rows than ds-tokenize at its defaults.
[ $full = 1 ] && ok 'negative: LF'"'"'s rows with preserve_thinking or enable_thinking false are not the defaults'"'"' rows' '
	! r1_same r1 8192 "--mask-history --preserve-thinking" --mask-history 2> /dev/null &&
	test -s lf.jsonl && test -s ds.jsonl &&
	! r1_same r1 8192 --no-thinking "" 2> /dev/null &&
	test -s lf.jsonl && test -s ds.jsonl &&
	test "$(trained_empty lf.jsonl)" = 0 && test "$(trained_empty ds.jsonl)" -gt 50
'
ok 'the thought switches are refused with the qwen template, and said in the shard header' '
	expect_exit 1 ds-tokenize -q -t "$R1/tokenizer.json" --template qwen --no-thinking "$D/r1.jsonl" > /dev/null 2> err &&
	grep -q "no-thinking is for a reasoning template" err &&
	expect_exit 1 ds-tokenize -q -t "$R1/tokenizer.json" --template qwen --preserve-thinking "$D/r1.jsonl" > /dev/null 2> err &&
	grep -q "preserve-thinking is for a reasoning template" err &&
	ds-tokenize -q -t "$R1/tokenizer.json" --no-thinking --preserve-thinking "$D/r1.jsonl" > s.shard &&
	zstd -q -d -c s.shard | od -A n -t u4 -j 56 -N 4 | tr -d " " | grep -qx 24
'
