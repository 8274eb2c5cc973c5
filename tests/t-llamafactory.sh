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
