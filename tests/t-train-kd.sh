#!/bin/sh
# t-train-kd: distillation from a teacher's soft labels (#21). ds-train's
# kd loss (forward_kl, reverse_kl, jsd; temperature; alpha) against a
# PyTorch reference written from the published formulas (tests/oracle/
# kd_ref.py: autograd over the full vocabulary); ds-tokenize --soft-labels
# against Hugging Face tokenizers' own tokenization of the replies; the
# shard extension through packing; the bad inputs each stage refuses.
. "$(dirname "$0")/lib.sh"
O=$TOP/tests/oracle
CFGS=$O/qwen2_configs.json
REF="$PY $O/qwen2_ref.py"
KD="$PY $O/kd_ref.py"
CMP="$PY $O/compare_st.py"

if ! "$PY" -c 'import torch, transformers, tokenizers' 2>/dev/null; then
	skip 'distillation against PyTorch' 'no tests/.venv with torch (tests/setup-venv.sh)'
	exit 0
fi

# ---- the loss against PyTorch ---------------------------------------------------
# Three steps of a packed batch (documents restart, masked prompts, a
# sample without targets), soft labels on 80% of the trained positions: the
# first step's loss, its two parts and every gradient to 1e-5, the weights
# after three AdamW steps to 1e-4 (k_proj.bias to 1e-3, as t-train: its true
# gradient is nearly 0). K = 1, 5, 20; the teacher's top K holds the label
# at some positions and not at others.
KB=param.model.layers.0.self_attn.k_proj.bias,param.model.layers.1.self_attn.k_proj.bias
same_kd() { # CONFIG SEED K 'kd options'
	$REF init --config "$CFGS:$1" --seed "$2" --dtype float32 -o m > /dev/null &&
	python3 "$O/qwen2_batch.py" --seed "$2" --steps 3 -o b.json &&
	$KD addsoft --batch b.json --k "$3" --seed "$2" -o bs.json &&
	jq -e "[.steps[][] | .ids as \$ids | .soft[]? | (.[1] | [.[range(0; length; 2)]]) as \$top |
		(\$top | index([\$ids[0]]) != null)] | length > 0" bs.json > /dev/null &&
	$KD train --model m --batch bs.json $4 --adam-eps 1e-6 -o ref.st > /dev/null 2>&1 &&
	ds-train check-step -m m --batch bs.json $4 --adam-eps 1e-6 -o ds.st &&
	$CMP ds.st ref.st --rtol 1e-5 --only grad.,loss,ce,kd,logits > cmp.out || { cat cmp.out; false; } &&
	$CMP ds.st ref.st --rtol 1e-4 --only param. --ignore $KB > cmp.out || { cat cmp.out; false; } &&
	$CMP ds.st ref.st --rtol 1e-3 --only $KB
}
ok 'forward_kl, tau 2, alpha 0.5, K 5: loss, parts, gradients, 3 steps = PyTorch' \
	'same_kd untied-gqa2 2 5 "--kd-alpha 0.5 --kd-temperature 2 --kd-loss forward_kl"'
ok 'reverse_kl, tau 1, alpha 1 (KD alone), K 1 = PyTorch' \
	'same_kd tied-mha 1 1 "--kd-alpha 1 --kd-temperature 1 --kd-loss reverse_kl"'
ok 'jsd beta 0.3, tau 1.5, alpha 0.7, K 20 = PyTorch' \
	'same_kd tied-gqa2 3 20 "--kd-alpha 0.7 --kd-temperature 1.5 --kd-loss jsd --kd-jsd-beta 0.3"'
ok 'jsd beta 0 is forward_kl and beta 1 reverse_kl (TRL), tau 0.5 = PyTorch' '
	same_kd untied-mha 4 5 "--kd-alpha 0.3 --kd-temperature 0.5 --kd-loss jsd --kd-jsd-beta 1" &&
	ds-train check-step -m m --batch bs.json --kd-alpha 0.3 --kd-temperature 0.5 --kd-loss reverse_kl \
		--adam-eps 1e-6 -o rev.st && cmp ds.st rev.st'
ok 'kd_alpha 0 with soft labels in the batch: the plain SFT step, bit for bit' '
	$REF init --config "$CFGS:tied-gqa2" --seed 5 --dtype float32 -o m > /dev/null &&
	python3 "$O/qwen2_batch.py" --seed 5 --steps 2 -o b.json &&
	$KD addsoft --batch b.json --k 5 --seed 5 -o bs.json &&
	ds-train check-step -m m --batch b.json -o plain.st &&
	ds-train check-step -m m --batch bs.json --kd-alpha 0 -o zero.st && cmp plain.st zero.st'

# ---- soft labels into shards ---------------------------------------------------
SETUP=$WORK/setup
mkdir -p "$SETUP" && (
	cd "$SETUP" &&
	qwen_tokenizer tok &&
	$REF init --config "$DATA/train/tiny-qwen.json" --seed 11 --dtype float32 -o base > /dev/null &&
	cp tok/tokenizer.json tok/tokenizer_config.json base/ &&
	seq 1 16 | jq -c '{id: ("p\(.)"), conversations: [{from: "user", value: "What is \(.) plus \(.)?"},
		{from: "assistant", value: "<think>\nDouble \(.): \(.) + \(.) = \(. * 2). ünïcödé ✓ 数学\n</think>\n\nThe answer is \(. * 2)."}]}' > conv.jsonl &&
	$PY "$O/soft_records.py" --tokenizer tok/tokenizer.json --k 4 --seed 1 --expect want.jsonl < conv.jsonl > soft.jsonl
) > "$WORK/setup.log" 2>&1 || { echo "t-train-kd setup failed:"; cat "$WORK/setup.log"; }
S=$SETUP

# The shard's soft labels (one sample a record) against what
# soft_records.py wrote for each token of the reply: the same ids in the
# same order at every reply token, log-probabilities to float32's rounding.
same_soft() { # SHARD WANT.jsonl
	ds-tokenize inspect --json "$1" | python3 -c '
import json, sys
want = [json.loads(l) for l in open(sys.argv[1])]
for n, (line, w) in enumerate(zip(sys.stdin, want)):
    got = json.loads(line)["soft"]
    toks = [t for reply in w for t in reply]
    assert len(got) == len(toks), f"record {n}: {len(got)} positions with soft labels, want {len(toks)}"
    for (pos, alt), (ids, lps) in zip(got, toks):
        assert alt[0::2] == ids, f"record {n} position {pos}: ids {alt[0::2]}, want {ids}"
        assert all(abs(a - b) <= 1e-6 * max(1, abs(b)) for a, b in zip(alt[1::2], lps)), (n, pos)
' "$2"
}

ok 'ds-tokenize --soft-labels: each reply token gets the alternatives the teacher named, HF tokenizers ids' '
	ds-tokenize -t $S/tok/tokenizer.json --soft-labels $S/soft.jsonl -o s.shard 2> err &&
	grep -q "with the teacher.s soft labels" err &&
	same_soft s.shard $S/want.jsonl &&
	ds-tokenize inspect --json s.shard | jq -e "[.soft[][0]] as \$p | .labels as \$l |
		all(\$p[]; \$l[.] != -100) and (\$p | length) == ([\$l[] | select(. != -100)] | length) - 2" > /dev/null'
ok 'packed: the soft labels travel with their documents' '
	ds-tokenize -q -t $S/tok/tokenizer.json --cutoff-len 256 --soft-labels $S/soft.jsonl -o s.shard &&
	ds-tokenize -q -t $S/tok/tokenizer.json --soft-labels --pack --cutoff-len 256 $S/soft.jsonl -o p.shard &&
	a=$(ds-tokenize inspect --json s.shard | jq -s "[.[].soft | length] | add") &&
	b=$(ds-tokenize inspect --json p.shard | jq -s "[.[].soft | length] | add") &&
	test "$a" = "$b" && test "$(ds-tokenize inspect --json p.shard | wc -l)" -lt 16 &&
	ds-tokenize inspect --json p.shard | jq -e "(.soft | map(.[0])) as \$p | .labels as \$l |
		all(\$p[]; \$l[.] != -100)" > /dev/null'
ok 'a reply whose tokens spell the text only after a prefix the prompt held: aligned where they start' '
	$PY $O/soft_records.py --tokenizer $S/tok/tokenizer.json --k 2 --prefix 8 < $S/conv.jsonl > pre.jsonl &&
	ds-tokenize -q -t $S/tok/tokenizer.json --soft-labels pre.jsonl -o s.shard &&
	ds-tokenize inspect --json s.shard | jq -e ".soft | length > 10" > /dev/null'
ok 'without --soft-labels the logprobs are not read: the shard of the records without them' '
	ds-tokenize -q -t $S/tok/tokenizer.json $S/soft.jsonl -o a.shard &&
	ds-tokenize -q -t $S/tok/tokenizer.json $S/conv.jsonl -o b.shard && cmp a.shard b.shard'
ok 'bad soft labels are refused, naming the line and what differs' '
	for b in unknown text split; do
		$PY $O/soft_records.py --tokenizer $S/tok/tokenizer.json --k 3 --break $b < $S/conv.jsonl > bad.jsonl &&
		expect_exit 1 ds-tokenize -t $S/tok/tokenizer.json --soft-labels bad.jsonl -o x.shard 2> err.$b || return 1
	done &&
	grep -q "bad.jsonl:1: .*no token of the student.s vocabulary" err.unknown &&
	grep -q "bad.jsonl:1: .*not in the reply" err.text &&
	grep -q "bad.jsonl:1: .*other tokens than the teacher generated" err.split &&
	ds-tokenize -t $S/tok/tokenizer.json --soft-labels --skip-bad bad.jsonl -o x.shard 2> err &&
	grep -q "16 bad lines skipped" err &&
	jq -c ".conversations[1].logprobs.k = 0" $S/soft.jsonl > k0.jsonl &&
	expect_exit 1 ds-tokenize -t $S/tok/tokenizer.json --soft-labels k0.jsonl -o x.shard 2> err &&
	grep -q "\"k\" is not a whole number" err &&
	{ head -3 $S/soft.jsonl; $PY $O/soft_records.py --tokenizer $S/tok/tokenizer.json --k 2 < $S/conv.jsonl | tail -1; } > mixed.jsonl &&
	expect_exit 1 ds-tokenize -t $S/tok/tokenizer.json --soft-labels mixed.jsonl -o x.shard 2> err &&
	grep -q "mixed.jsonl:4: logprobs with 2 alternatives" err &&
	{ $PY $O/soft_records.py --tokenizer $S/tok/tokenizer.json --k 2 --expect want2.jsonl < $S/conv.jsonl | head -1;
	  sed -n "2,4p" $S/soft.jsonl; } > wider.jsonl && head -1 want2.jsonl > want1.jsonl &&
	expect_exit 1 ds-tokenize -t $S/tok/tokenizer.json --soft-labels wider.jsonl -o x.shard 2> err &&
	grep -q "wider.jsonl:2: logprobs with 4 alternatives a token, where the records before had 2" err &&
	ds-tokenize -q -t $S/tok/tokenizer.json --soft-labels --skip-bad wider.jsonl -o x.shard &&
	same_soft x.shard want1.jsonl'
ok 'the header announces the extension (flag 64, which older readers refuse); a flipped soft-label byte is an error' '
	ds-tokenize -q -t $S/tok/tokenizer.json --cutoff-len 256 --soft-labels $S/soft.jsonl -o s.shard &&
	zstd -q -d -c s.shard > raw && test "$(od -A n -t u1 -j 56 -N 1 raw | tr -d " ")" -ge 64 &&
	python3 -c "
import sys; b = bytearray(open(\"raw\", \"rb\").read()); i = b.find(b\"DSSL\") + 40; b[i] ^= 1
open(\"bad\", \"wb\").write(b)" &&
	expect_exit 1 ds-tokenize inspect --stats bad 2> err && grep -q "soft labels (checksum mismatch)" err'

# ---- training on the shards ------------------------------------------------------
kd_yaml() {
	cat <<-EOF
	model_name_or_path: $S/base
	stage: sft
	finetuning_type: full
	dataset: $1
	cutoff_len: 256
	output_dir: out
	logging_steps: 1
	save_steps: 100
	overwrite_output_dir: true
	per_device_train_batch_size: 2
	gradient_accumulation_steps: 1
	learning_rate: 1.0e-3
	num_train_epochs: 1.0
	lr_scheduler_type: cosine
	warmup_ratio: 0.1
	seed: 3
	device: cpu
	EOF
}
ok 'ds-train kd_alpha 0.5 on soft-label shards: logs ce_loss and kd_loss, the KD term goes down' '
	ds-tokenize -q -t $S/tok/tokenizer.json --cutoff-len 256 --soft-labels $S/soft.jsonl -o s.shard &&
	{ kd_yaml s.shard | sed "s/num_train_epochs: 1.0/num_train_epochs: 3.0/"; echo "kd_alpha: 0.5";
	  echo "kd_temperature: 2.0"; } > kd.yaml &&
	ds-train kd.yaml 2> err &&
	jq -e "has(\"ce_loss\") and has(\"kd_loss\")" out/trainer_log.jsonl > /dev/null &&
	first=$(jq -s ".[0].kd_loss" out/trainer_log.jsonl) && last=$(jq -s ".[-1].kd_loss" out/trainer_log.jsonl) &&
	jq -n "$last < $first" | grep -q true || fail "kd_loss did not go down: $first -> $last" &&
	grep -q "kd_alpha: 0.5" out/ds_train_args.yaml'
ok 'kd_alpha without soft labels, a kd_loss or kd_alpha out of range, kd with stage dpo: refused, saying why' '
	ds-tokenize -q -t $S/tok/tokenizer.json --cutoff-len 256 $S/conv.jsonl -o plain.shard &&
	{ kd_yaml plain.shard; echo "kd_alpha: 0.5"; } > a.yaml &&
	expect_exit 1 ds-train a.yaml 2> err && grep -q "hold no soft labels" err &&
	{ kd_yaml plain.shard | grep -v device; echo "kd_alpha: 0.5"; echo "kd_loss: kl"; } > b.yaml &&
	expect_exit 2 ds-train b.yaml 2> err && grep -q "kd_loss" err &&
	{ kd_yaml plain.shard; echo "kd_alpha: 1.5"; } > c.yaml &&
	expect_exit 2 ds-train c.yaml 2> err && grep -q "kd_alpha: must be in \[0, 1\]" err &&
	{ kd_yaml plain.shard | grep -v stage; echo "kd_alpha: 0.5"; echo "stage: dpo"; } > d.yaml &&
	expect_exit 2 ds-train d.yaml 2> err && grep -q "distillation is a stage: sft loss" err'
ok 'kd_alpha 0 on soft-label shards: a warning, and the weights of plain SFT bit for bit' '
	ds-tokenize -q -t $S/tok/tokenizer.json --cutoff-len 256 --soft-labels $S/soft.jsonl -o s.shard &&
	ds-tokenize -q -t $S/tok/tokenizer.json --cutoff-len 256 $S/conv.jsonl -o plain.shard &&
	kd_yaml s.shard | sed "s|output_dir: out|output_dir: o1|" > a.yaml && ds-train a.yaml 2> err &&
	grep -q "kd_alpha is 0, so they are not used" err &&
	kd_yaml plain.shard | sed "s|output_dir: out|output_dir: o2|" > b.yaml && ds-train b.yaml 2> /dev/null &&
	cmp o1/model.safetensors o2/model.safetensors'

# ---- the whole chain on loopback ------------------------------------------------
# A teacher model that answers every problem with one chain of thought
# (tests/data/infer/script_model.py, the R1-Distill tokenizer), served by
# ds-infer serve; a random student of the same tokenizer.
C=$WORK/chain
mkdir -p "$C" && (
	cd "$C" &&
	mkdir tok && zstd -q -d -c "$DATA/qwen/tokenizer.json.zst" |
		jq -c --slurpfile p "$DATA/r1distill/tokenizer.patch.json" ". + \$p[0]" > tok/tokenizer.json &&
	cp "$DATA/r1distill/tokenizer_config.json" tok/ &&
	eos=$(printf "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>") &&
	"$PY" "$DATA/infer/script_model.py" --tokenizer tok --config "$DATA/train/tiny-qwen.json" \
		--text "$(printf '<think>\nAdd them.\n</think>\n\nThe answer is \\boxed{42}.')" \
		--after "$(printf "<\357\275\234Assistant\357\275\234>")" --stop "$eos" -o teacher &&
	$REF init --config "$DATA/train/tiny-qwen.json" --seed 12 --dtype float32 -o student > /dev/null &&
	cp tok/tokenizer.json tok/tokenizer_config.json student/ &&
	{ seq 1 6 | jq -c '{id: "q\(.)", domain: "math", problem: "What is \(40 + .) - \(.) + 2?", answer: "42"}';
	  echo '{"id": "w", "domain": "math", "problem": "What is 40 + 1?", "answer": "41"}'; } > problems.jsonl
) > "$WORK/chain.log" 2>&1 || { echo "t-train-kd chain setup failed:"; cat "$WORK/chain.log"; }

serve() { # MODEL: ds-infer serve on a free port; sets URL and SRV
	rm -f port
	ds-infer serve -m "$1" --port 0 --port-file port 2> serve.log &
	SRV=$!
	trap 'kill $SRV 2> /dev/null || true' EXIT
	i=0; while [ ! -s port ] && [ $i -lt 100 ] && kill -0 $SRV 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
	[ -s port ] || { cat serve.log; return 1; }
	URL=http://127.0.0.1:$(cat port)/v1
}
stop() { kill $SRV; wait $SRV || true; }
chain_yaml() { # SHARD OUTDIR ['key: value' ...]: those keys replaced
	shard=$1 out=$2; shift 2
	keys=$(for line in "$@"; do printf '%s\n' "${line%%:*}"; done)
	kd_yaml "$shard" | sed "s|model_name_or_path: .*|model_name_or_path: $C/student|; s|output_dir: out|output_dir: $out|" |
		awk -v keys="$keys" 'BEGIN { n = split(keys, k, "\n"); for (i = 1; i <= n; i++) drop[k[i]] = 1 }
			{ split($0, f, ":"); if (!(f[1] in drop)) print }'
	echo "kd_alpha: 0.5"
	for line in "$@"; do echo "$line"; done
}
# A filter's output cut where a kill -9 leaves it (after whole lines, and
# inside one), then the same command again: the whole output, nothing
# twice, nothing lost.
same_lines() { # A B: the same records, in any order, but for the time a request took
	jq -c "del(.teacher.latency_ms)" "$1" | sort > lines.a && jq -c "del(.teacher.latency_ms)" "$2" | sort > lines.b &&
		cmp lines.a lines.b
}
rerun_cut() { # OUT 'command'
	cp "$1" full &&
	for cut in 1 $(($(head -2 full | wc -c) + 9)) $(($(wc -c < full) - 3)); do
		head -c $cut full > "$1" && eval "$2" && same_lines "$1" full || return 1
	done
}
ok 'the chain on loopback: ds-infer serve -> ds-teacher --logprobs 5 -> ds-judge -> ds-sharegpt -> ds-tokenize --soft-labels -> ds-train kd_alpha 0.5; the shard holds the teacher model'"'"'s own top 5 (transformers)' '
	serve $C/teacher &&
	ds-teacher --base-url "$URL" --model teacher --logprobs 5 --stream -q -o t.jsonl $C/problems.jsonl &&
	ds-teacher --base-url "$URL" --model teacher --logprobs 5 -q $C/problems.jsonl > t2.jsonl &&
	stop &&
	test "$(jq -c ".teacher.logprobs.top" t.jsonl | sort -u | wc -l)" = 1 &&
	test "$(jq -c ".teacher.logprobs" t.jsonl | sort -u)" = "$(jq -c ".teacher.logprobs" t2.jsonl | sort -u)" &&
	ds-judge -q -r wrong.jsonl -o judged.jsonl t.jsonl &&
	test "$(wc -l < judged.jsonl)" = 6 && test "$(wc -l < wrong.jsonl)" = 1 &&
	ds-sharegpt -q -o sg.jsonl judged.jsonl &&
	ds-tokenize -t $C/tok/tokenizer.json --cutoff-len 256 --soft-labels sg.jsonl -o s.shard 2> err &&
	grep -q "trained tokens with the teacher.s soft labels" err &&
	ds-tokenize inspect --json s.shard > s.json &&
	"$PY" $O/soft_check.py --model $C/teacher < s.json > chk && cat chk &&
	jq -e ".samples == 6 and .positions == 6 * 16" chk > /dev/null &&
	chain_yaml s.shard out > kd.yaml && ds-train kd.yaml 2> /dev/null &&
	jq -e "select(.current_steps == 3) | .kd_loss > 0 and .ce_loss > 0" out/trainer_log.jsonl > /dev/null &&
	test -s out/model.safetensors'
ok 'the chain killed at each stage and run again: the same records, shard and model, nothing lost or twice' '
	serve $C/teacher &&
	ds-teacher --base-url "$URL" --model teacher --logprobs 5 -q --ordered -o t.jsonl $C/problems.jsonl &&
	rerun_cut t.jsonl "ds-teacher --base-url $URL --model teacher --logprobs 5 -q --ordered -o t.jsonl $C/problems.jsonl" &&
	stop &&
	ds-judge -q -r wrong.jsonl -o judged.jsonl t.jsonl &&
	rerun_cut judged.jsonl "ds-judge -q -r wrong.jsonl -o judged.jsonl t.jsonl" && test "$(wc -l < wrong.jsonl)" = 1 &&
	ds-sharegpt -q -o sg.jsonl judged.jsonl &&
	rerun_cut sg.jsonl "ds-sharegpt -q -o sg.jsonl judged.jsonl" &&
	ds-tokenize -q -t $C/tok/tokenizer.json --cutoff-len 256 --soft-labels sg.jsonl -o s.shard &&
	cp s.shard whole.shard && head -c 100 s.shard > s.shard.tmp &&
	ds-tokenize -q -t $C/tok/tokenizer.json --cutoff-len 256 --soft-labels sg.jsonl -o s.shard &&
	cmp s.shard whole.shard && test ! -e s.shard.tmp &&
	set -- "num_train_epochs: 4.0" "save_steps: 4" "save_total_limit: 1" "overwrite_output_dir: false" &&
	chain_yaml s.shard a "$@" > a.yaml && ds-train a.yaml 2> /dev/null &&
	chain_yaml s.shard b "$@" > b.yaml &&
	{ ds-train b.yaml 2> /dev/null & pid=$!; } &&
	i=0 && while [ ! -d b/checkpoint-4 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done &&
	kill -9 $pid && { wait $pid 2> /dev/null || true; } &&
	ds-train b.yaml 2> err && grep -q "resuming from b/checkpoint-" err &&
	cmp a/model.safetensors b/model.safetensors'
ok '--teacher-tokenizer: the teacher'"'"'s tokenizer.json must be the student'"'"'s (another layout of it is), or the run stops first' '
	jq -S . $C/tok/tokenizer.json > same.json &&
	ds-tokenize -q -t $C/tok/tokenizer.json --teacher-tokenizer same.json --cutoff-len 256 $S/soft.jsonl -o a.shard 2> err ||
		{ cat err; false; } &&
	expect_exit 1 ds-tokenize -t $S/tok/tokenizer.json --teacher-tokenizer $C/tok/tokenizer.json $S/soft.jsonl -o b.shard 2> err &&
	grep -q "not the student.s tokenizer: id 1516[0-9][0-9] is" err && test ! -e b.shard &&
	jq ".model.merges |= (.[1:] + .[:1])" $S/tok/tokenizer.json > moved.json &&
	expect_exit 1 ds-tokenize -t $S/tok/tokenizer.json --teacher-tokenizer moved.json $S/soft.jsonl -o b.shard 2> err &&
	grep -q "merges, pre-tokenizer or normalizer differ" err'
