#!/bin/sh
# ds-infer: greedy generation token for token as transformers' generate,
# prompts as LLaMA-Factory renders them, sampling, batch mode (restartable,
# judged by ds-judge), the chat REPL, the OpenAI-compatible server (the
# official openai client, ds-teacher), and bad input.
. "$(dirname "$0")/lib.sh"

export OMP_NUM_THREADS=1 # the CPUs are shared with other tests; one case runs -t 2

if ! "$PY" -c 'import transformers, llamafactory, openai' 2>/dev/null; then
	skip 'ds-infer against transformers, LLaMA-Factory and the openai client' 'tests/.venv lacks them'
	exit 0
fi

# Models, made once: M random (vocabulary of Qwen's tokenizer), S the
# script model (always "<think> Let me add.</think>\n\nThe answer is
# \boxed{42}."), SH random in shards (bf16), F16 random in fp16, and
# ODD16 / ODD_BF an untied model whose sizes are no multiple of 8 (72, 100,
# head_dim 12), in fp16 and bf16, so every kernel has a tail to handle.
M=$WORK/tiny S=$WORK/script SH=$WORK/sharded F16=$WORK/f16 ODD16=$WORK/odd16 ODD_BF=$WORK/oddbf
REF="$PY $TOP/tests/oracle/qwen2_ref.py"
CMP="$PY $TOP/tests/oracle/compare_st.py"
cat > "$WORK/odd.json" <<'EOF'
{"vocab_size": 300, "hidden_size": 72, "intermediate_size": 100, "num_hidden_layers": 2,
 "num_attention_heads": 6, "num_key_value_heads": 2, "max_position_embeddings": 256,
 "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "tie_word_embeddings": false,
 "hidden_act": "silu", "attention_dropout": 0.0}
EOF
mk() {
	"$PY" "$TOP/tests/oracle/qwen2_ref.py" init --config "$DATA/train/tiny-qwen.json" --seed 1 \
		--dtype float32 -o "$M" &&
	qwen_tokenizer "$M" &&
	"$PY" "$TOP/tests/oracle/qwen2_ref.py" init --config "$DATA/train/tiny-qwen.json" --seed 2 \
		--dtype bfloat16 --max-shard-size 4MB -o "$SH" &&
	qwen_tokenizer "$SH" &&
	"$PY" "$DATA/infer/script_model.py" --tokenizer "$M" --config "$DATA/train/tiny-qwen.json" \
		--text "$(printf '<think> Let me add.</think>\n\nThe answer is \\boxed{42}.')" -o "$S" &&
	$REF init --config "$DATA/train/tiny-qwen.json" --seed 3 --dtype float16 -o "$F16" &&
	qwen_tokenizer "$F16" &&
	$REF init --config "$WORK/odd.json" --seed 4 --dtype float16 -o "$ODD16" &&
	$REF init --config "$WORK/odd.json" --seed 5 --dtype bfloat16 -o "$ODD_BF"
}
if ! mk > "$WORK/mk.log" 2>&1; then
	cat "$WORK/mk.log"
	ok 'the test models could be made' 'false'
	exit 0
fi

# Prompts: problems (one with white space around it) and chats, one with
# a system prompt and a chain of thought in its history.
cat > "$WORK/prompts.jsonl" <<'EOF'
{"id":"p1","problem":"What is 2+2?"}
{"id":"p2","problem":"  Hello, world!\n"}
{"id":"c1","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Name a prime."},{"role":"assistant","content":"<think>\nsmall ones\n</think>\n\n7"},{"role":"user","content":"Another?"}]}
{"id":"c2","messages":[{"role":"user","content":"数学 ü 🙂"},{"role":"assistant","content":"ok"},{"role":"user","content":"\nagain"}]}
EOF
P=$WORK/prompts.jsonl
"$PY" "$TOP/tests/oracle/hf_generate.py" --model "$M" --max-new-tokens 24 < "$P" > "$WORK/hf.jsonl" 2> "$WORK/hf.log" ||
	cat "$WORK/hf.log"
ids() { jq -c '{id, prompt_ids: .teacher.prompt_ids, completion_ids: .teacher.completion_ids}' | jq -s -c 'sort_by(.id)[]'; }

# Stop strings. Each prompt again, with a set of stop strings in the
# record: transformers generates with them as its stop_strings (stopping at
# the token that completes one), and without them for the plain text the
# cut is made in (the ID/- records). In these greedy answers of M, set A
# holds "co Ta" (p1: the end of 'xico' and the start of ' Tasks', ending
# inside that token), "F UI" (p2: across two ' UIF' tokens), "/or" (c2: its
# very start) and "zzz" (nowhere); set B "sks Tasks J" (p1: across three
# tokens), "看了看\"" (c2: CJK text that is held back until the '"' of the
# next token makes it a stop) and "炘 R"; set C one string, as a request
# may give it. S's sets cut inside the chain of thought, in the content,
# at the tags themselves, and not at all.
STOP_A='["co Ta","F UI","/or","zzz"]' STOP_B='["炘 R","看了看\"","sks Tasks J"]' STOP_C='"F UI"'
jq -c --argjson a "$STOP_A" --argjson b "$STOP_B" --argjson c "[$STOP_C]" \
	'(.id |= . + "/-"), (.id |= . + "/A" | .stop = $a), (.id |= . + "/B" | .stop = $b), (.id |= . + "/C" | .stop = $c)' \
	"$P" > "$WORK/stops.jsonl"
"$PY" "$TOP/tests/oracle/hf_generate.py" --model "$M" --max-new-tokens 24 --text < "$WORK/stops.jsonl" \
	> "$WORK/hfstop.jsonl" 2> "$WORK/hf.log" || cat "$WORK/hf.log"
# S's sets, one request each: tag and stop, as ds-infer serve is sent it.
cat > "$WORK/sstops.tsv" <<'EOF'
in	"add"
after	"answer"
close	"</think>"
open	["<think>"]
both	["Let me add.</think>","nope"]
none	["nope"]
EOF
{ echo '{"id":"s/-","problem":"x"}'
  while IFS='	' read -r tag stop; do
	jq -n -c --arg t "$tag" --argjson s "$stop" '{id: ("s/" + $t), problem: "x", stop: (if ($s | type) == "string" then [$s] else $s end)}'
  done < "$WORK/sstops.tsv"; } > "$WORK/sstops.jsonl"
"$PY" "$TOP/tests/oracle/hf_generate.py" --model "$S" --max-new-tokens 40 --text < "$WORK/sstops.jsonl" \
	> "$WORK/hfsstop.jsonl" 2> "$WORK/hf.log" || cat "$WORK/hf.log"
# stopref ORACLE STOPS TAG MAX: the expected answers of ORACLE's records
# tagged TAG (stop strings STOPS, JSON; MAX new tokens), one JSON line a
# prompt in id order: the plain text cut before the earliest stop string in
# it, split at <think> ... </think> as ds-infer(1) says, finish_reason stop
# when a stop string was found (else as the plain run ended), and
# transformers' own completion ids under stop_strings.
cat > "$WORK/stopref.py" <<'EOF'
import json, sys
rows = {r["id"]: r for r in map(json.loads, open(sys.argv[1]))}
stops, tag, max_new = json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
stops = [stops] if isinstance(stops, str) else stops
ws = " \t\r\n"
for key in sorted(rows):
    base, _, s = key.rpartition("/")
    if s != tag:
        continue
    plain = rows[base + "/-"]
    text = plain["text"]
    found = [text.find(x) for x in stops if x in text]
    finish = "stop" if found or len(plain["completion_ids"]) < max_new else "length"
    raw = text[:min(found)] if found else text
    reasoning, content = None, raw
    if raw.lstrip(ws).startswith("<think>"):
        body = raw.lstrip(ws)[7:]
        i = body.find("</think>")
        reasoning, content = (body.strip(ws), "") if i < 0 else (body[:i].strip(ws), body[i + 8:].lstrip(ws))
    print(json.dumps({"id": base, "reasoning": reasoning, "content": content, "finish_reason": finish,
                      "completion_ids": rows[key]["completion_ids"]}, ensure_ascii=False))
EOF
stopref() { "$PY" "$WORK/stopref.py" "$@"; }

# Start ds-infer serve on a free port with the given options; sets URL and
# SRV (stopped when the case's subshell ends, whatever happens).
serve() {
	rm -f port
	ds-infer serve --port 0 --port-file port "$@" 2> serve.log &
	SRV=$!
	trap 'kill $SRV 2> /dev/null || true' EXIT # a case that fails leaves no server behind
	i=0; while [ ! -s port ] && [ $i -lt 100 ] && kill -0 $SRV 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
	[ -s port ] || { cat serve.log; return 1; }
	URL=http://127.0.0.1:$(cat port)/v1
}
stop() { kill $SRV; wait $SRV || true; }

# ---- the model's answers ----------------------------------------------

ok 'an R1-Distill tokenizer: the deepseekr1 template chosen by itself, prompts and greedy ids as LLaMA-Factory + generate, with --no-thinking and --preserve-thinking too' '
	mkdir r1 r1lf && cp "$M/config.json" "$M/model.safetensors" r1/ &&
	zstd -q -d -c "$DATA/qwen/tokenizer.json.zst" |
		jq -c --slurpfile p "$DATA/r1distill/tokenizer.patch.json" ". + \$p[0]" > r1/tokenizer.json &&
	cp r1/* r1lf/ &&
	jq ".tokenizer_class = \"PreTrainedTokenizerFast\"" "$DATA/r1distill/tokenizer_config.json" > r1lf/tokenizer_config.json &&
	"$PY" "$TOP/tests/oracle/hf_generate.py" --model r1lf --max-new-tokens 12 --template deepseekr1 \
		--stop "$(printf "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>")" < "$P" 2> hf.log |
		jq -s -c "sort_by(.id)[]" > want &&
	test "$(wc -l < want)" = 4 &&
	ds-infer -m r1 --max-tokens 12 --ids -q < "$P" | ids > got && diff want got &&
	ds-infer -m r1 --chat-template deepseekr1 --max-tokens 12 --ids -q < "$P" | ids > got2 && diff want got2 &&
	test "$(jq -c "select(.id == \"p1\") | .prompt_ids[0]" got)" = 151646 &&
	expect_exit 1 ds-infer -m "$M" --chat-template deepseekr1 --max-tokens 2 -q < "$P" 2> err &&
	grep -q "is not one token" err &&
	expect_exit 2 ds-infer -m "$M" --chat-template nosuch < /dev/null &&
	for flags in --no-thinking --preserve-thinking "--no-thinking --preserve-thinking"; do
		"$PY" "$TOP/tests/oracle/hf_generate.py" --model r1lf --max-new-tokens 12 --template deepseekr1 $flags \
			--stop "$(printf "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>")" < "$P" 2> hf.log |
			jq -s -c "sort_by(.id)[]" > want2 &&
		ds-infer -m r1 $flags --max-tokens 12 --ids -q < "$P" | ids > got3 && diff want2 got3 &&
		! cmp -s want want2 || exit 1
	done &&
	expect_exit 2 ds-infer -m "$M" --no-thinking --max-tokens 2 -q < "$P" 2> err &&
	grep -q "no-thinking is for a reasoning chat template" err
'

ok 'greedy: prompts and completions token for token as LLaMA-Factory + transformers generate (4 prompts, 2 chats)' '
	test -s "$WORK/hf.jsonl" &&
	jq -s -c "sort_by(.id)[]" "$WORK/hf.jsonl" > want &&
	ds-infer -m "$M" --max-tokens 24 --ids -q < "$P" | ids > got && diff want got &&
	test $(wc -l < got) = 4
'

ok 'greedy: the same one sequence at a time (-b 1) and on two threads (-t 2)' '
	jq -s -c "sort_by(.id)[]" "$WORK/hf.jsonl" > want &&
	ds-infer -m "$M" --max-tokens 24 --ids -q -b 1 < "$P" | ids > got && diff want got &&
	ds-infer -m "$M" --max-tokens 24 --ids -q -b 3 -t 2 < "$P" | ids > got && diff want got
'

# ---- weights as stored (bf16, fp16) -------------------------------------
# ds-infer reads the matrices in the dtype the files hold; transformers
# loads the same files upcast to fp32 (torch_dtype float32). The logits
# must agree to 1e-4 of their largest, on the many-token (prefill) and the
# one-token (decode) paths, on one thread and on two.

ok 'bf16 and fp16 used as stored: logits within 1e-4 of transformers in fp32, prefill and decode paths' '
	for m in "$SH" "$F16" "$ODD16" "$ODD_BF"; do
		case $m in "$ODD16"|"$ODD_BF") ids=5,17,299,0,42,42,7,120,3,250,11 ;;
			*) ids=151644,872,198,3838,374,220,18,5519,151645,151644,77091,198 ;; esac
		$REF logits --model "$m" --ids $ids -o ref.st &&
		for t in 1 2; do
			ds-infer logits -m "$m" --ids $ids -o ds.st -t $t && $CMP ds.st ref.st --rtol 1e-4 ||
				fail "$m, $t thread(s): the logits differ"
		done &&
		ds-infer logits -m "$m" --ids $ids -o ds32.st --fp32 && $CMP ds32.st ref.st --rtol 1e-4 ||
			fail "$m --fp32: the logits differ"
	done
'

ok 'bf16 and fp16 used as stored: greedy token for token as transformers generate (fp32), and as --fp32' '
	for m in "$SH" "$F16"; do
		"$PY" "$TOP/tests/oracle/hf_generate.py" --model "$m" --max-new-tokens 24 < "$P" 2> hf.log |
			jq -s -c "sort_by(.id)[]" > want && test $(wc -l < want) = 4 || { cat hf.log; exit 1; }
		ds-infer -m "$m" --max-tokens 24 --ids -q < "$P" | ids > got && diff want got &&
		ds-infer -m "$m" --max-tokens 24 --ids -q -b 1 -t 2 < "$P" | ids > got && diff want got &&
		ds-infer -m "$m" --max-tokens 24 --ids -q --fp32 < "$P" | ids > got && diff want got || exit 1
	done
'

# A model as ds-train writes it (a bf16 checkpoint after two steps of
# training from a transformers base) generates as transformers does.
ok 'a checkpoint written by ds-train: greedy token for token as transformers generate' '
	$REF init --config "$DATA/train/tiny-qwen.json" --seed 11 --dtype float32 -o base > /dev/null &&
	qwen_tokenizer base &&
	seq 1 8 | jq -c "{id: (\"p\(.)\"), conversations: [{from: \"user\", value: \"What is \(.) plus \(.)?\"},
		{from: \"assistant\", value: \"<think>\nDouble it.\n</think>\n\n\(. * 2)\"}]}" > conv.jsonl &&
	ds-tokenize -q -t base/tokenizer.json --cutoff-len 256 --pack conv.jsonl > train.shard &&
	printf "%s\n" "model_name_or_path: base" "stage: sft" "finetuning_type: full" "dataset: train.shard" \
		"template: qwen" "cutoff_len: 256" "output_dir: out" "save_steps: 2" "max_steps: 2" \
		"per_device_train_batch_size: 1" "gradient_accumulation_steps: 1" "learning_rate: 1.0e-2" \
		"lr_scheduler_type: constant" "bf16: true" "seed: 3" > sft.yaml &&
	{ ds-train sft.yaml 2> train.log || { cat train.log; exit 1; }; } &&
	c=out/checkpoint-2 && test -f $c/model.safetensors && test -f $c/tokenizer.json &&
	grep -q "\"dtype\": \"bfloat16\"" $c/config.json &&
	"$PY" "$TOP/tests/oracle/hf_generate.py" --model $c --max-new-tokens 24 < "$P" 2> hf.log |
		jq -s -c "sort_by(.id)[]" > want && test $(wc -l < want) = 4 || { cat hf.log; exit 1; }
	ds-infer -m $c --max-tokens 24 --ids -q < "$P" | ids > got && diff want got
'

# Python's writer aligns every tensor to its element size; a file that
# does not (here a 1-byte rotary buffer first, as old exporters left one)
# is read through aligned copies (sgemm wants its fp32 aligned), with the
# same results.
ok 'a file whose tensors are not aligned to their element size gives the same logits' '
	ids=151644,872,198,3838,374,220,18,5519,151645 &&
	$REF logits --model "$M" --ids $ids -o ref.st &&
	cp -r "$M" un &&
	"$PY" - un/model.safetensors <<-EOF &&
	import json, struct, sys
	f = open(sys.argv[1], "rb").read()
	n = struct.unpack("<Q", f[:8])[0]
	head = json.loads(f[8:8 + n]); data = f[8 + n:]
	meta = head.pop("__metadata__", None)
	out = {"model.rotary_emb.inv_freq": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
	body, at = [b"\x00"], 1
	for k, v in head.items():
	    b, e = v["data_offsets"]
	    out[k] = dict(v, data_offsets=[at, at + e - b]); body.append(data[b:e]); at += e - b
	if meta: out["__metadata__"] = meta
	h = json.dumps(out).encode(); h += b" " * (-len(h) % 8)
	open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(body))
	EOF
	ds-infer logits -m un --ids $ids -o ds.st && $CMP ds.st ref.st --rtol 1e-4
'

ok 'ds-infer logits: bad usage exits 2; a matrix stored as F64 is refused by name, exit 1' '
	expect_exit 2 ds-infer logits -m "$ODD16" -o x.st 2> err && grep -q "needs -m, --ids and -o" err &&
	expect_exit 2 ds-infer logits -m "$ODD16" --ids 1,x -o x.st 2> err && grep -q "comma-separated" err &&
	expect_exit 2 ds-infer logits -m "$ODD16" --ids 1,300 -o x.st 2> err && grep -q "300 is not below" err &&
	cp -r "$ODD16" m64 &&
	"$PY" - m64/model.safetensors <<-EOF &&
	import sys, torch
	from safetensors.torch import load_file, save_file
	t = load_file(sys.argv[1])
	t["model.layers.1.mlp.up_proj.weight"] = t["model.layers.1.mlp.up_proj.weight"].to(torch.float64)
	save_file(t, sys.argv[1], metadata={"format": "pt"})
	EOF
	expect_exit 1 ds-infer logits -m m64 --ids 1,2 -o x.st 2> err &&
	grep -q "model.layers.1.mlp.up_proj.weight is F64; only F32, BF16 and F16 are read" err &&
	expect_exit 1 ds-infer logits -m m64 --ids 1,2 -o x.st --fp32 2> err && grep -q "up_proj" err
'

ok 'a stop token from generation_config.json ends the answer where transformers ends it' '
	cp -r "$M" m2 &&
	stop=$(jq -r "select(.id == \"p2\") | .completion_ids[3]" "$WORK/hf.jsonl") &&
	at=$(jq -r "select(.id == \"p2\") | .completion_ids | index($stop) + 1" "$WORK/hf.jsonl") &&
	jq ".eos_token_id = [151645, $stop]" "$M/generation_config.json" > m2/generation_config.json &&
	"$PY" "$TOP/tests/oracle/hf_generate.py" --model m2 --max-new-tokens 24 < "$P" 2> /dev/null |
		jq -s -c "sort_by(.id)[]" > want &&
	ds-infer -m m2 --max-tokens 24 --ids -q < "$P" > out.jsonl && ids < out.jsonl > got && diff want got &&
	test "$(jq -r "select(.id == \"p2\") | .teacher.finish_reason + \" \" + (.teacher.usage.completion_tokens | tostring)" out.jsonl)" = "stop $at" &&
	test "$(jq -r "select(.id == \"p1\") | .teacher.finish_reason" out.jsonl)" = length
'

ok '--stop: content is the plain greedy text cut before the first stop string, ids as generate(stop_strings=...)' '
	for k in A B; do
		eval "stops=\$STOP_$k" &&
		printf "%s\n" "$stops" | jq -r ".[]" > list &&
		set -- && while IFS= read -r x; do set -- "$@" --stop "$x"; done < list &&
		stopref "$WORK/hfstop.jsonl" "$stops" $k 24 |
			jq -c "{id, content, finish_reason, completion_ids, n: (.completion_ids | length)}" > want.$k &&
		for b in 8 1; do
			ds-infer -m "$M" --max-tokens 24 --ids -q -b $b "$@" < "$P" |
				jq -c "{id} + (.teacher | {content, finish_reason, completion_ids, n: .usage.completion_tokens})" |
				jq -s -c "sort_by(.id)[]" > got && diff want.$k got || exit 1
		done
	done &&
	jq -s -e "map(.finish_reason) == [\"length\", \"stop\", \"stop\", \"stop\"]" want.A > /dev/null &&
	jq -s -e "map(.content) | index(\"\") != null" want.A > /dev/null &&
	jq -s -e "map(.finish_reason) | index(\"stop\") != null" want.B > /dev/null
'

ok 'the teacher object: reasoning split from <think>, content, finish_reason, usage, model, sample' '
	echo "{\"id\":\"s\",\"problem\":\"x\",\"keep\":[1]}" | ds-infer -m "$S" -q > out.jsonl &&
	jq -c "del(.teacher.latency_ms)" out.jsonl > got &&
	echo "{\"id\":\"s\",\"problem\":\"x\",\"keep\":[1],\"teacher\":{\"model\":\"script\",\"reasoning\":\"Let me add.\",\"content\":\"The answer is \\\\\\\\boxed{42}.\",\"finish_reason\":\"stop\",\"sample\":0,\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":17,\"reasoning_tokens\":6,\"cached_tokens\":0}}}" > want &&
	diff want got && jq -e ".teacher.latency_ms >= 0" out.jsonl > /dev/null
'

ok 'ds-fetch-shaped problems | ds-infer | ds-judge --summary grades the student' '
	printf "%s\n" "{\"id\":\"a\",\"domain\":\"math\",\"problem\":\"6*7?\",\"answer\":\"42\"}" \
		"{\"id\":\"b\",\"domain\":\"math\",\"problem\":\"40+3?\",\"answer\":\"43\"}" > probs.jsonl &&
	ds-infer -m "$S" -q < probs.jsonl | ds-judge --summary -r rej.jsonl > ok.jsonl 2> summary &&
	grep -q "accuracy 0.5000 (1/2)" summary && jq -r .id ok.jsonl | grep -qx a && jq -r .id rej.jsonl | grep -qx b
'

ok 'sampling: a seed gives the same answers, another seed others; -n 3 gives samples 0, 1, 2' '
	set -- --temperature 0.9 --top-k 40 --top-p 0.95 --min-p 0.01 --repetition-penalty 1.1 --max-tokens 12 -q &&
	ds-infer -m "$M" "$@" --seed 5 -n 3 < "$P" | jq -c "del(.teacher.latency_ms)" > a &&
	ds-infer -m "$M" "$@" --seed 5 -n 3 -b 2 < "$P" | jq -c "del(.teacher.latency_ms)" > b &&
	sort a > as && sort b > bs && cmp as bs &&
	ds-infer -m "$M" "$@" --seed 6 -n 3 < "$P" | jq -c "del(.teacher.latency_ms)" > c && ! cmp -s a c &&
	test "$(jq -r "[.id, .teacher.sample] | @tsv" a | sort | uniq | wc -l)" = 12 &&
	test "$(jq -r ".teacher.content" a | sort -u | wc -l)" -gt 4
'

ok 'generation_config.json sampling defaults apply; flags override them; do_sample false is greedy' '
	cp -r "$M" m3 &&
	jq ". + {do_sample: true, temperature: 1.5, top_k: 0}" "$M/generation_config.json" > m3/generation_config.json &&
	run() { ds-infer --max-tokens 12 -q "$@" < "$P" | jq -r .teacher.content; } &&
	run -m "$M" > greedy &&
	run -m m3 > sampled && ! cmp -s greedy sampled &&
	run -m m3 --greedy > flagged && cmp greedy flagged &&
	jq ". + {do_sample: false, temperature: 1.5}" "$M/generation_config.json" > m3/generation_config.json &&
	run -m m3 > off && cmp greedy off
'

ok 'restartable: killed mid-run and started again, every (id, sample) once, as an unbroken run' '
	for i in $(seq 1 12); do echo "{\"id\":\"q$i\",\"problem\":\"question $i\"}"; done > many.jsonl &&
	ds-infer -m "$M" --max-tokens 40 -n 2 -b 1 -q < many.jsonl | jq -c "del(.teacher.latency_ms)" | sort > want &&
	ds-infer -m "$M" --max-tokens 40 -n 2 -b 1 -q -o out.jsonl < many.jsonl & pid=$! &&
	i=0; while [ "$(cat out.jsonl 2>/dev/null | wc -l)" -lt 5 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done &&
	kill -9 $pid; wait $pid || true
	n=$(wc -l < out.jsonl) && test "$n" -ge 5 && test "$n" -lt 24 &&
	ds-infer -m "$M" --max-tokens 40 -n 2 -b 1 -o out.jsonl < many.jsonl 2> err &&
	grep -q "$n already done" err &&
	jq -c "del(.teacher.latency_ms)" out.jsonl | sort > got && diff want got
'

ok 'the chat REPL: turns streamed, history kept (its cache reused), the same tokens as batch mode' '
	printf "Name a prime.\nAnother?\nquit\nnot read\n" | ds-infer -m "$M" --chat --max-tokens 10 > chat.out 2> chat.err &&
	test $(wc -l < chat.out) = 2 && test $(grep -c "10 tokens, .* tok/s" chat.err) = 2 &&
	grep -q "cached" chat.err &&
	first=$(sed -n 1p chat.out) &&
	jq -n -c --arg a "$first" "{id:\"x\",messages:[{role:\"user\",content:\"Name a prime.\"},{role:\"assistant\",content:\$a},{role:\"user\",content:\"Another?\"}]}" |
		ds-infer -m "$M" --max-tokens 10 -q | jq -r .teacher.content > want &&
	sed -n 2p chat.out > got && diff want got
'

ok 'the chat REPL: --system, the chain of thought marked, /clear, end of input leaves' '
	printf "hi\n/clear\nhi\n" | ds-infer -m "$S" --chat --system "Be brief." > chat.out 2> chat.err &&
	printf "<think>\nLet me add.\n</think>\n\nThe answer is \\\\boxed{42}.\n" > one &&
	cat one one > want && diff want chat.out
'

ok 'the chat REPL: --stop cuts the streamed answer as the reference does' '
	printf "%s\n" "$STOP_A" | jq -r ".[]" > list &&
	set -- && while IFS= read -r x; do set -- "$@" --stop "$x"; done < list &&
	stopref "$WORK/hfstop.jsonl" "$STOP_A" A 24 | jq -c "select(.id == \"p1\")" > ref &&
	jq -r .content ref > want && n=$(jq ".completion_ids | length" ref) &&
	printf "What is 2+2?\n" | ds-infer -m "$M" --chat --max-tokens 24 "$@" > got 2> err &&
	diff want got && grep -q "^\[$n tokens" err
'

# ---- the server --------------------------------------------------------

ok 'serve: the official openai client, non-streaming and streaming, reasoning_content split off' '
	serve -m "$S" &&
	"$PY" - "$URL" > got <<-EOF &&
	import sys
	from openai import OpenAI
	c = OpenAI(base_url=sys.argv[1], api_key="unused")
	print([m.id for m in c.models.list().data])
	r = c.chat.completions.create(model="script", messages=[{"role": "user", "content": "6*7?"}])
	m = r.choices[0].message
	print(repr(m.reasoning_content), repr(m.content), r.choices[0].finish_reason,
	      r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.completion_tokens_details.reasoning_tokens)
	s = c.chat.completions.create(model="script", messages=[{"role": "user", "content": "6*7?"}], stream=True,
	                              stream_options={"include_usage": True})
	rc, ct, fin, use = "", "", None, None
	for ch in s:
	    if ch.usage: use = ch.usage.completion_tokens
	    for x in ch.choices:
	        rc += getattr(x.delta, "reasoning_content", None) or ""
	        ct += x.delta.content or ""
	        fin = x.finish_reason or fin
	print(repr(rc), repr(ct), fin, use)
	EOF
	stop &&
	cat > want <<-EOF &&
	['"'"'script'"'"']
	'"'"'Let me add.'"'"' '"'"'The answer is \\\\boxed{42}.'"'"' stop 33 17 6
	'"'"'Let me add.'"'"' '"'"'The answer is \\\\boxed{42}.'"'"' stop 17
	EOF
	diff want got
'

ok 'serve: answers equal batch mode; n=2 and concurrent clients (served in one batch) each get theirs' '
	serve -m "$M" --max-tokens 12 -b 4 &&
	pids= &&
	for i in 1 2 3 4 5; do
		curl -s -f "$URL/chat/completions" -d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"question $i\"}]}" > r$i &
		pids="$pids $!"
	done && wait $pids &&
	curl -s -f "$URL/chat/completions" -d "{\"model\":\"m\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"question 1\"}]}" > rn &&
	stop &&
	for i in 1 2 3 4 5; do echo "{\"id\":\"$i\",\"problem\":\"question $i\"}"; done |
		ds-infer -m "$M" --max-tokens 12 -q -b 1 | jq -r .teacher.content > want &&
	for i in 1 2 3 4 5; do jq -r ".choices[0].message.content" r$i; done > got && diff want got &&
	jq -r ".choices[].message.content" rn > gotn && head -1 want > w1 && cat w1 w1 | diff - gotn &&
	test "$(jq .usage.completion_tokens rn)" = 24
'

ok 'serve --api-key-file: every route but /health needs the key (401 in OpenAI'"'"'s shape); the openai client and ds-teacher with it' '
	printf "%s\n" sk-local-serve-key-0001 > key && chmod 600 key &&
	serve -m "$S" --api-key-file key &&
	curl -s -o none.json -w "%{http_code}" "$URL/models" > code && test "$(cat code)" = 401 &&
	jq -e ".error.code == \"invalid_api_key\" and .error.type == \"invalid_request_error\" and (.error.message | test(\"provide an API key\"))" none.json > /dev/null &&
	curl -s -o bad.json -w "%{http_code}" -H "Authorization: Bearer sk-local-serve-key-0002" -H "Content-Type: application/json" \
		-d "{\"model\":\"script\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" "$URL/chat/completions" > code &&
	test "$(cat code)" = 401 && jq -e ".error.message == \"Incorrect API key provided.\"" bad.json > /dev/null &&
	! grep -q sk-local bad.json none.json &&
	test "$(curl -s -o /dev/null -w "%{http_code}" "${URL%/v1}/health")" = 200 &&
	"$PY" -c "
import sys
from openai import OpenAI, AuthenticationError
ok = OpenAI(base_url=sys.argv[1], api_key=\"sk-local-serve-key-0001\")
r = ok.chat.completions.create(model=\"script\", messages=[{\"role\": \"user\", \"content\": \"6*7?\"}])
assert \"42\" in r.choices[0].message.content
try:
    OpenAI(base_url=sys.argv[1], api_key=\"wrong\").models.list(); sys.exit(\"no 401\")
except AuthenticationError as e:
    assert e.status_code == 401
" "$URL" &&
	echo "{\"id\":\"t\",\"domain\":\"math\",\"problem\":\"6*7?\",\"answer\":\"42\"}" > p.jsonl &&
	ds-teacher --base-url "$URL" --model script --api-key-file key -q < p.jsonl > a.jsonl && test "$(wc -l < a.jsonl)" = 1 &&
	stop &&
	expect_exit 2 ds-infer serve -m "$S" --api-key sk-x 2> err && grep -q "api-key-file" err &&
	: > empty && expect_exit 2 ds-infer serve -m "$S" --api-key-file empty 2> err && grep -q "the API key file is empty" err &&
	serve -m "$S" --host 0.0.0.0 && stop && grep -q "serving beyond this machine without a key" serve.log
'

ok 'serve under hostile load: with 1,000 idle connections open a request is answered at once; idle ones closed after --idle-timeout; a body trickled a byte at a time cut off by --request-timeout' '
	serve -m "$S" --idle-timeout 2 --request-timeout 2 &&
	"$PY" - "$(cat port)" <<-EOF &&
	import json, resource, socket, sys, time, urllib.request
	soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
	resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
	port = int(sys.argv[1])
	idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
	t = time.time()
	body = json.dumps({"model": "script", "messages": [{"role": "user", "content": "6*7?"}], "max_tokens": 20})
	req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(),
	                             headers={"Content-Type": "application/json"})
	reply = json.load(urllib.request.urlopen(req, timeout=20))
	took = time.time() - t
	assert "42" in reply["choices"][0]["message"]["content"], reply
	assert took < 3, f"answered in {took:.1f} s beside 1000 idle connections"
	time.sleep(3.5)
	closed = 0
	for s in idle:
	    s.settimeout(1)
	    try:
	        closed += s.recv(1) == b""
	    except (socket.timeout, ConnectionResetError):
	        pass
	    s.close()
	assert closed == 1000, f"{closed} of 1000 idle connections closed after the idle timeout"
	s = socket.create_connection(("127.0.0.1", port))
	s.sendall(b"POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
	          b"Content-Length: 200\\r\\n\\r\\n")
	t, cut = time.time(), None
	s.settimeout(0.3)
	while time.time() - t < 10 and cut is None:
	    try:
	        s.sendall(b" ")
	        if s.recv(1) == b"":
	            cut = time.time() - t
	    except socket.timeout:
	        pass
	    except (BrokenPipeError, ConnectionResetError):
	        cut = time.time() - t
	assert cut is not None and cut < 5, f"a trickled body still open after {time.time() - t:.1f} s"
	print(f"answered in {took:.2f} s beside 1000 idle connections; a trickled body cut after {cut:.1f} s")
	EOF
	stop
'

ok 'serve: a max_tokens beyond what the context has left is a 400 with the numbers, in vLLM'"'"'s words' '
	serve -m "$S" &&
	req() { curl -s -o r.json -w "%{http_code}" -H "Content-Type: application/json" -d "{\"model\":\"script\",
		\"messages\":[{\"role\":\"user\",\"content\":\"6*7?\"}],\"$1\":$2}" "$URL/chat/completions"; } &&
	test "$(req max_tokens 1000000000)" = 400 &&
	jq -e ".error.code == \"context_length_exceeded\" and .error.param == \"max_tokens\" and
		(.error.message | test(\"maximum context length is 1024 tokens. However, you requested 100000[0-9]+ tokens \\\\([0-9]+ in the messages, 1000000000 in the completion\\\\)\"))" r.json > /dev/null &&
	test "$(req max_completion_tokens 1020)" = 400 &&
	test "$(req max_tokens 20)" = 200 && jq -e ".choices[0].message.content | test(\"42\")" r.json > /dev/null &&
	stop
'

ok 'serve: ds-teacher --base-url ds-infer serve, plain and --stream, end to end' '
	serve -m "$S" &&
	echo "{\"id\":\"t\",\"domain\":\"math\",\"problem\":\"6*7?\",\"answer\":\"42\"}" > p.jsonl &&
	ds-teacher --base-url "$URL" --model script -q < p.jsonl > a.jsonl &&
	ds-teacher --base-url "$URL" --model script --stream -q < p.jsonl > b.jsonl &&
	stop &&
	for f in a.jsonl b.jsonl; do
		test "$(jq -r ".teacher | [.model, .reasoning, .content, .finish_reason] | @tsv" $f)" = \
			"$(printf "script\tLet me add.\tThe answer is \\\\\\\\boxed{42}.\tstop")"
	done &&
	ds-judge --summary < a.jsonl 2>&1 > /dev/null | grep -q "accuracy 1.0000"
'

# The stop strings of each request go through the official client as it
# sends them (a string, or a list). Streamed, a stop string must never show,
# not even its start: the deltas joined are the non-streamed content, which
# is the reference's, cut before the stop string.
ok 'serve: stop (string and array) through the openai client: content cut as the reference, streamed too, usage as generate(stop_strings=...)' '
	serve -m "$M" --max-tokens 24 &&
	for k in A B C; do
		eval "stops=\$STOP_$k" &&
		stopref "$WORK/hfstop.jsonl" "$stops" $k 24 |
			jq -c "{id, content, finish_reason, n: (.completion_ids | length)}" > want.$k || exit 1
	done &&
	"$PY" - "$URL" "$P" "$STOP_A" "$STOP_B" "$STOP_C" <<-EOF &&
	import json, sys
	from openai import OpenAI
	c = OpenAI(base_url=sys.argv[1], api_key="unused")
	recs = sorted((json.loads(l) for l in open(sys.argv[2])), key=lambda r: r["id"])
	def line(f, i, content, finish, n):
	    print(json.dumps({"id": i, "content": content, "finish_reason": finish, "n": n}), file=f)
	for k, stop in zip("ABC", map(json.loads, sys.argv[3:6])):
	    plain, streamed = open("got." + k, "w"), open("streamed." + k, "w")
	    for r in recs:
	        m = [{"role": "user", "content": r["problem"].strip()}] if "problem" in r else r["messages"]
	        a = c.chat.completions.create(model="m", messages=m, stop=stop)
	        line(plain, r["id"], a.choices[0].message.content, a.choices[0].finish_reason, a.usage.completion_tokens)
	        s = c.chat.completions.create(model="m", messages=m, stop=stop, stream=True,
	                                      stream_options={"include_usage": True})
	        text, fin, n = "", None, None
	        for ch in s:
	            n = ch.usage.completion_tokens if ch.usage else n
	            for x in ch.choices:
	                text += x.delta.content or ""
	                fin = x.finish_reason or fin
	        line(streamed, r["id"], text, fin, n)
	a = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "What is 2+2?"}],
	                              stop=json.loads(sys.argv[3]), n=2)
	print(json.dumps({"content": [x.message.content for x in a.choices],
	                  "finish_reason": [x.finish_reason for x in a.choices], "n": a.usage.completion_tokens}),
	      file=open("two", "w"))
	EOF
	stop &&
	for k in A B C; do
		jq -c . got.$k | diff want.$k - && jq -c . streamed.$k | diff want.$k - || exit 1
	done &&
	jq -c "select(.id == \"p1\") | {content: [.content, .content], finish_reason: [.finish_reason, .finish_reason], n: (2 * .n)}" want.A > want2 &&
	jq -c . two | diff want2 -
'

# The script model's answer, cut inside its chain of thought, in its
# content, at </think> and at <think> (its very start): stop strings see
# the whole text, tags included, and the split is made of what is left.
ok 'serve: stop strings are matched on the whole text, tags included; reasoning_content and content are split from what is left' '
	serve -m "$S" &&
	while IFS="	" read -r tag stops; do
		stopref "$WORK/hfsstop.jsonl" "$stops" $tag 40 |
			jq -c --arg t $tag "{tag: \$t, reasoning, content, finish_reason, n: (.completion_ids | length)}" || exit 1
	done < "$WORK/sstops.tsv" > want &&
	test "$(wc -l < want)" = 6 &&
	"$PY" - "$URL" "$WORK/sstops.tsv" <<-EOF &&
	import json, sys
	from openai import OpenAI
	c = OpenAI(base_url=sys.argv[1], api_key="unused")
	plain, streamed = open("got", "w"), open("streamed", "w")
	for l in open(sys.argv[2]):
	    tag, stop = l.rstrip("\n").split("\t")
	    m = [{"role": "user", "content": "x"}]
	    a = c.chat.completions.create(model="script", messages=m, stop=json.loads(stop))
	    x = a.choices[0]
	    print(json.dumps({"tag": tag, "reasoning": x.message.reasoning_content, "content": x.message.content,
	                      "finish_reason": x.finish_reason, "n": a.usage.completion_tokens}), file=plain)
	    s = c.chat.completions.create(model="script", messages=m, stop=json.loads(stop), stream=True,
	                                  stream_options={"include_usage": True})
	    rc, ct, fin, n = "", "", None, None
	    for ch in s:
	        n = ch.usage.completion_tokens if ch.usage else n
	        for x in ch.choices:
	            rc += getattr(x.delta, "reasoning_content", None) or ""
	            ct += x.delta.content or ""
	            fin = x.finish_reason or fin
	    print(json.dumps({"tag": tag, "reasoning": rc, "content": ct, "finish_reason": fin, "n": n}), file=streamed)
	EOF
	stop &&
	jq -c . got | diff want - &&
	jq -c ".reasoning //= \"\"" want > want.streamed && jq -c . streamed | diff want.streamed - &&
	test "$(jq -r "select(.tag == \"after\") | .content" want)" = "The " &&
	test "$(jq -c "select(.tag == \"open\") | [.reasoning, .content]" want)" = "[null,\"\"]"
'

ok 'serve: a bad stop (a number, 5 strings, an empty string, a non-string in the list) is a 400 naming it; the server stays up' '
	serve -m "$M" --max-tokens 2 &&
	code() {
		curl -s -o body -w "%{http_code}" "$URL/chat/completions" \
			-d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":$1}"
	} &&
	for s in 7 "[\"a\",\"b\",\"c\",\"d\",\"e\"]" "\"\"" "[\"a\",\"\"]" "[\"a\",2]" "{}" true; do
		test "$(code "$s")" = 400 && jq -e ".error.param == \"stop\" and (.error.message | test(\"stop\"))" body > /dev/null ||
			{ echo "stop $s was not refused"; exit 1; }
	done &&
	for s in null "[]" "\"x\"" "[\"a\",\"b\",\"c\",\"d\"]"; do
		test "$(code "$s")" = 200 || { echo "stop $s was refused"; cat body; exit 1; }
	done &&
	stop
'

ok 'serve: bad requests get 4xx JSON errors and the server stays up' '
	serve -m "$M" --max-tokens 4 --max-body 4096 --ctx 64 &&
	code() { curl -s -o body -w "%{http_code}" "$@"; } &&
	test "$(code "$URL/chat/completions" -d "{\"model\":")" = 400 && jq -e ".error.message | test(\"not JSON\")" body &&
	test "$(code "$URL/chat/completions" -d "[1]")" = 400 &&
	test "$(code "$URL/chat/completions" -d "{\"model\":\"m\",\"messages\":[]}")" = 400 &&
	test "$(code "$URL/chat/completions" -d "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"x\"}]}")" = 400 &&
	test "$(code "$URL/chat/completions" -d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}")" = 400 &&
	jq -e ".error.message | test(\"temperature\")" body &&
	test "$(code "$URL/chat/completions" -d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"$(printf "word %.0s" $(seq 1 80))\"}]}")" = 400 &&
	jq -e ".error.code == \"context_length_exceeded\"" body &&
	head -c 100000 /dev/zero | tr "\\000" a > big &&
	test "$(code "$URL/chat/completions" --data-binary @big)" = 413 && jq -e ".error.message | test(\"4096\")" body &&
	head -c 50000 big > chunk &&
	test "$(code -H "Transfer-Encoding: chunked" "$URL/chat/completions" --data-binary @chunk)" = 413 &&
	test "$(code "$URL/nowhere")" = 404 && test "$(code "$URL/chat/completions")" = 405 &&
	test "$(code "$URL/models/other")" = 404 &&
	test "$(code "$URL/chat/completions" -d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}")" = 200 &&
	stop
'

ok 'serve: a client that hangs up mid-stream is cancelled; the server goes on' '
	serve -m "$M" --max-tokens 2000 &&
	{ curl -s -N "$URL/chat/completions" -d "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" | head -c 3000 > part || true; } &&
	grep -q "^data: " part &&
	i=0; while ! grep -q cancelled serve.log && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done &&
	grep -q "cancelled (the client went away)" serve.log &&
	curl -s -f "$URL/chat/completions" -d "{\"model\":\"m\",\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" |
		jq -e ".usage.completion_tokens == 3" &&
	stop
'

# ---- log-probabilities (soft labels, #21) --------------------------------
# Each token's log-probability and its top K alternatives, as
# tests/oracle/hf_logprobs.py finds them in log_softmax of transformers'
# logits (fp32, temperature 1, before any penalty) over the prompt and the
# completion: within 1e-4 (ds-infer's fp32 logits agree with transformers'
# to 1e-4 of their largest, the bound of the logits cases above; the
# compact form's 6 digits add at most 5e-5 at |logprob| < 100).
LP="$PY $TOP/tests/oracle/hf_logprobs.py"
ids_of() { jq -c '{id, prompt_ids: .teacher.prompt_ids, completion_ids: .teacher.completion_ids}'; }
# join_ids IDS: each record of stdin with the ids of its id in file IDS
join_ids() { jq -c --slurpfile i "$1" '. as $r | ($i[] | select(.id == $r.id)) + $r'; }

ok 'batch --logprobs K: logprob and top K as transformers'"'"' log_softmax (K = 5, 1, 20; greedy, and raw under a repetition penalty); the tokens joined are the content; 6 digits' '
	ds-infer -m "$M" --max-tokens 12 --ids --logprobs 5 -q < "$P" > a5 &&
	head -2 "$P" | ds-infer -m "$M" --max-tokens 6 --ids --logprobs 1 -q > a1 &&
	head -2 "$P" | ds-infer -m "$M" --max-tokens 6 --ids --logprobs 20 -q > a20 &&
	ds-infer -m "$M" --max-tokens 12 --ids --logprobs 3 --repetition-penalty 1.3 -q < "$P" > ap &&
	! cmp -s a5 ap &&
	cat a5 a1 a20 ap | jq -c ".teacher | {prompt_ids, completion_ids, logprobs}" | $LP --model "$M" > sum &&
	cat sum && jq -e ".records == 12 and .tokens == 120" sum > /dev/null &&
	jq -s -e "map(.teacher.logprobs.k) == [5, 5, 5, 5, 1, 1, 20, 20, 3, 3, 3, 3]" a5 a1 a20 ap > /dev/null &&
	jq -s -e "all(.[].teacher; .logprobs as \$l | (\$l.tokens | add) == .content and
		(\$l.logprob | length) == (\$l.tokens | length) and (\$l.top | length) == (\$l.tokens | length) and
		all(\$l.top[]; length == 2 * \$l.k))" a5 a1 a20 ap > /dev/null &&
	jq -r ".teacher.logprobs | .logprob[], (.top[][] | numbers)" a5 |
		awk "{ s = \$0; sub(/^-/, \"\", s); sub(/e.*/, \"\", s); sub(/\\./, \"\", s); sub(/^0+/, \"\", s);
			if (length(s) > 6) { print \"more than 6 digits: \" \$0; bad = 1 } } END { exit bad }" &&
	ds-infer -m "$M" --max-tokens 12 -q < "$P" | jq -c .teacher.content > plain &&
	jq -c .teacher.content a5 | diff plain -
'

ok 'serve: logprobs and top_logprobs through the openai client as transformers'"'"' log_softmax, non-streaming and streaming (every token once, in order, with the chunk that shows its text); null when not asked' '
	ds-infer -m "$M" --max-tokens 12 --ids -q < "$P" | ids_of > ids &&
	serve -m "$M" --max-tokens 12 &&
	"$PY" - "$URL" "$P" > got <<-EOF &&
	import json, sys
	from openai import OpenAI
	c = OpenAI(base_url=sys.argv[1], api_key="unused")
	def fail(msg):
	    sys.exit(msg)
	for r in map(json.loads, open(sys.argv[2])):
	    m = [{"role": "user", "content": r["problem"].strip()}] if "problem" in r else r["messages"]
	    a = c.chat.completions.create(model="m", messages=m, logprobs=True, top_logprobs=5)
	    x = a.choices[0]
	    plain = [e.model_dump() for e in x.logprobs.content]
	    if x.logprobs.refusal is not None: fail("refusal is not null")
	    if b"".join(bytes(e["bytes"]) for e in plain).decode() != x.message.content: fail("bytes are not the content")
	    print(json.dumps({"id": r["id"], "k": 5, "logprobs": plain}))
	    streamed, text, seen = [], b"", b""
	    for ch in c.chat.completions.create(model="m", messages=m, logprobs=True, top_logprobs=5, stream=True):
	        for y in ch.choices:
	            piece = (y.delta.content or "").encode()
	            if piece and y.logprobs is None: fail("a chunk with text but no logprobs")
	            streamed += [e.model_dump() for e in y.logprobs.content] if y.logprobs else []
	            text += piece
	            seen = b"".join(bytes(e["bytes"]) for e in streamed)
	            if not seen.startswith(text): fail(f"text {text!r} goes out before its tokens {seen!r}")
	    if seen != text: fail(f"the tokens {seen!r} are not the text {text!r}")
	    if streamed != plain: fail("streamed logprobs differ from the plain ones")
	    if r["id"] == "p1":
	        b = c.chat.completions.create(model="m", messages=m, logprobs=True)
	        print(json.dumps({"id": r["id"], "k": 0, "logprobs": b.choices[0].logprobs.model_dump()}))
	        n = c.chat.completions.create(model="m", messages=m)
	        if n.choices[0].logprobs is not None: fail("logprobs not asked, yet not null")
	        for ch in c.chat.completions.create(model="m", messages=m, stream=True):
	            if any(y.logprobs is not None for y in ch.choices): fail("logprobs not asked, yet in a chunk")
	EOF
	stop &&
	join_ids ids < got | $LP --model "$M" > sum && cat sum && jq -e ".records == 5 and .tokens == 60" sum > /dev/null
'

ok 'a reasoning template (deepseekr1): the chain of thought'"'"'s tokens and the think tags have their logprobs, batch (K = 1) and serve (K = 20, reasoning_content deltas carrying theirs); bytes joined are the raw completion, a character split across tokens too; a stop string'"'"'s token goes with the finish chunk' '
	mkdir tok && zstd -q -d -c "$DATA/qwen/tokenizer.json.zst" |
		jq -c --slurpfile p "$DATA/r1distill/tokenizer.patch.json" ". + \$p[0]" > tok/tokenizer.json &&
	cp "$DATA/r1distill/tokenizer_config.json" tok/ &&
	eos=$(printf "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>") &&
	printf "<think>\nLet me add.\n</think>\n\nThe answer is \\\\boxed{42} \360\237\253\240" > raw &&
	"$PY" "$DATA/infer/script_model.py" --tokenizer tok --config "$DATA/train/tiny-qwen.json" --text "$(cat raw)" \
		--after "$(printf "<\357\275\234Assistant\357\275\234>")" --stop "$eos" -o r1s > mk.log 2>&1 &&
	echo "{\"id\":\"r\",\"problem\":\"6*7?\"}" > p.jsonl &&
	ds-infer -m r1s --ids --logprobs 1 -q < p.jsonl > b &&
	jq -c ".teacher | [.reasoning, .content, .finish_reason, .logprobs.tokens[0], .logprobs.tokens[6], .logprobs.tokens[17]]" b > got &&
	echo "[\"Let me add.\",\"The answer is \\\\\\\\boxed{42} \360\237\253\240\",\"stop\",\"<think>\",\"</think>\",[32,240,159]]" > want &&
	diff want got &&
	serve -m r1s &&
	"$PY" - "$URL" > chunks <<-EOF &&
	import json, sys
	from openai import OpenAI
	c = OpenAI(base_url=sys.argv[1], api_key="unused")
	m = [{"role": "user", "content": "6*7?"}]
	a = c.chat.completions.create(model="r1s", messages=m, logprobs=True, top_logprobs=20)
	plain = [e.model_dump() for e in a.choices[0].logprobs.content]
	open("raw.plain", "wb").write(b"".join(bytes(e["bytes"]) for e in plain))
	streamed = []
	for ch in c.chat.completions.create(model="r1s", messages=m, logprobs=True, top_logprobs=20, stream=True):
	    for y in ch.choices:
	        d, es = y.delta, [e.model_dump() for e in y.logprobs.content] if y.logprobs else []
	        kind = "reasoning" if getattr(d, "reasoning_content", None) else "content" if d.content else "-"
	        print(kind, json.dumps(getattr(d, "reasoning_content", None) or d.content or ""),
	              json.dumps([e["token"] for e in es]), sep="\t")
	        streamed += es
	open("raw.streamed", "wb").write(b"".join(bytes(e["bytes"]) for e in streamed))
	# cut by a stop string: the token that completes it goes with the finish chunk
	toks, last = [], None
	for ch in c.chat.completions.create(model="r1s", messages=m, logprobs=True, stop=["}"], stream=True):
	    for y in ch.choices:
	        es = [e.token for e in y.logprobs.content] if y.logprobs else []
	        toks += es
	        last = es if y.finish_reason else last
	print("stop", json.dumps("".join(toks)), json.dumps(last), sep="\t")
	json.dump({"id": "r", "k": 20, "logprobs": plain}, open("lp", "w")); print(file=open("lp", "a"))
	json.dump({"id": "r", "k": 20, "logprobs": streamed}, open("lp", "a"))
	EOF
	stop &&
	cmp raw raw.plain && cmp raw raw.streamed &&
	cat > want <<-EOF &&
	-	""	[]
	reasoning	"Let"	["<think>", "\n", "Let"]
	reasoning	" me"	[" me"]
	reasoning	" add"	[" add"]
	reasoning	"."	[".\n"]
	content	"The"	["</think>", "\n\n", "The"]
	content	" answer"	[" answer"]
	content	" is"	[" is"]
	content	" \\\\"	[" \\\\"]
	content	"boxed"	["boxed"]
	content	"{"	["{"]
	content	"4"	["4"]
	content	"2"	["2"]
	content	"}"	["}"]
	content	" "	[" \ufffd"]
	content	"\ud83e\udee0"	["\ufffd", "\ufffd"]
	-	""	[]
	stop	"<think>\nLet me add.\n</think>\n\nThe answer is \\\\boxed{42}"	["}"]
	EOF
	diff want chunks &&
	ids_of < b > ids && { cat lp; echo; jq -c ".teacher | {id: \"r\", logprobs}" b; } | join_ids ids |
		$LP --model r1s --stop "$eos" > sum && cat sum && jq -e ".records == 3 and .tokens == 60" sum > /dev/null
'

ok 'serve: top_logprobs without logprobs true, out of [0, 20] or not an integer, or a logprobs not boolean: a 400 naming the field; the server stays up' '
	serve -m "$M" --max-tokens 2 &&
	code() {
		curl -s -o body -w "%{http_code}" "$URL/chat/completions" \
			-d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]$1}"
	} &&
	for f in ",\"top_logprobs\":2" ",\"logprobs\":false,\"top_logprobs\":0" ",\"logprobs\":null,\"top_logprobs\":1"; do
		test "$(code "$f")" = 400 &&
		jq -e ".error.param == \"top_logprobs\" and .error.type == \"invalid_request_error\" and
			(.error.message | test(\"top_logprobs.*logprobs. is enabled\"))" body > /dev/null ||
			{ echo "$f was not refused"; cat body; exit 1; }
	done &&
	for f in ",\"logprobs\":true,\"top_logprobs\":21" ",\"logprobs\":true,\"top_logprobs\":-1" \
		",\"logprobs\":true,\"top_logprobs\":1.5" ",\"logprobs\":true,\"top_logprobs\":\"3\""; do
		test "$(code "$f")" = 400 &&
		jq -e ".error.param == \"top_logprobs\" and (.error.message | test(\"top_logprobs\"))" body > /dev/null ||
			{ echo "$f was not refused"; cat body; exit 1; }
	done &&
	for f in ",\"logprobs\":1" ",\"logprobs\":\"yes\"" ",\"logprobs\":[]"; do
		test "$(code "$f")" = 400 && jq -e ".error.param == \"logprobs\"" body > /dev/null ||
			{ echo "$f was not refused"; cat body; exit 1; }
	done &&
	for f in "" ",\"logprobs\":false" ",\"logprobs\":true" ",\"logprobs\":true,\"top_logprobs\":null" \
		",\"logprobs\":true,\"top_logprobs\":0" ",\"logprobs\":true,\"top_logprobs\":20"; do
		test "$(code "$f")" = 200 || { echo "$f was refused"; cat body; exit 1; }
	done &&
	test "$(jq -c ".choices[0].logprobs.content | map(.top_logprobs | length)" body)" = "[20,20]" &&
	stop
'

ok '--logprobs: 0, 21 or not a number is a usage error; it is for batch mode' '
	for k in 0 21 x; do
		expect_exit 2 ds-infer -m "$M" --logprobs $k < /dev/null 2> err && grep -q -- "--logprobs must be an integer from 1 to 20" err || exit 1
	done &&
	expect_exit 2 ds-infer serve -m "$M" --logprobs 3 2> err && grep -q -- "--logprobs" err &&
	expect_exit 2 ds-infer -m "$M" --chat --logprobs 3 < /dev/null 2> err && grep -q -- "--logprobs" err
'

# ---- bad input ----------------------------------------------------------

ok 'a prompt longer than the context: NAME:LINE: reason and exit 1; --skip-bad counts it' '
	printf "%s\n" "{\"id\":\"a\",\"problem\":\"hi\"}" "{\"id\":\"b\",\"problem\":\"$(printf "word %.0s" $(seq 1 80))\"}" > in.jsonl &&
	expect_exit 1 ds-infer -m "$M" --ctx 64 --max-tokens 4 < in.jsonl > out 2> err &&
	grep -q "^ds-infer:2: the prompt is [0-9]* tokens; the context holds 64" err &&
	ds-infer -m "$M" --ctx 64 --max-tokens 4 --skip-bad < in.jsonl > out 2> err &&
	test "$(jq -r .id out)" = a && grep -q "1 bad line skipped" err
'

ok 'bad records: not JSON, no id, no problem or messages, a chat ending with the assistant' '
	for l in "{" "{\"problem\":\"x\"}" "{\"id\":\"a\"}" \
		"{\"id\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":\"y\"}]}"; do
		echo "$l" > in.jsonl && expect_exit 1 ds-infer -m "$M" < in.jsonl > out 2> err &&
		test ! -s out && grep -q "^ds-infer:1: " err || { cat err; exit 1; }
	done
'

ok 'a model directory with a missing shard, a damaged config or no tokenizer: a clear error, exit 1' '
	test -f "$SH/model.safetensors.index.json" &&
	cp -r "$SH" m && rm m/model-00002-of-*.safetensors &&
	expect_exit 1 ds-infer -m m < /dev/null 2> err && grep -q "model-00002-of-.*safetensors" err &&
	cp -r "$SH" m4 && echo "{" > m4/config.json && expect_exit 1 ds-infer -m m4 < /dev/null 2> err &&
	grep -q "config.json" err &&
	cp -r "$SH" m5 && rm m5/tokenizer.json && expect_exit 1 ds-infer -m m5 < /dev/null 2> err &&
	grep -q "tokenizer.json" err &&
	expect_exit 1 ds-infer -m nowhere < /dev/null 2> err && grep -q nowhere err
'

ok 'a bf16 checkpoint in shards loads and answers' '
	echo "{\"id\":\"a\",\"problem\":\"hi\"}" | ds-infer -m "$SH" --max-tokens 3 -q | jq -e ".teacher.usage.completion_tokens == 3"
'

ok 'a full disk is an error (> /dev/full); a reader that goes away ends it quietly' '
	expect_exit 1 ds-infer -m "$M" --max-tokens 2 -q < "$P" > /dev/full 2> err && grep -q "write error\|No space" err &&
	ds-infer -m "$M" --max-tokens 2 -q < "$P" 2> err | head -1 > /dev/null && test ! -s err
'

ok '--stop: a fifth one, an empty one, or one given to serve is a usage error, exit 2' '
	expect_exit 2 ds-infer -m "$M" --stop a --stop b --stop c --stop d --stop e < /dev/null 2> err &&
	grep -q "at most 4 --stop" err &&
	expect_exit 2 ds-infer -m "$M" --stop "" < /dev/null 2> err && grep -q -- "--stop: an empty string" err &&
	expect_exit 2 ds-infer serve -m "$M" --stop a 2> err && grep -q -- "--stop is not for serve" err
'

ok '--help and --version print to stdout; usage errors exit 2' '
	ds-infer --help > out && grep -q "^usage: ds-infer" out && grep -q -- "--top-p" out &&
	test "$(ds-infer --version)" = "ds-infer (ds) 0.1.0" &&
	expect_exit 2 ds-infer < /dev/null 2> err && grep -q -- "-m DIR is required" err &&
	expect_exit 2 ds-infer -m x --top-p 2 < /dev/null 2> /dev/null &&
	expect_exit 2 ds-infer -m x --port 1 < /dev/null 2> /dev/null &&
	expect_exit 2 ds-infer serve -m x -n 2 2> /dev/null &&
	expect_exit 2 ds-infer bogus -m x 2> /dev/null
'

ok '--help agrees with the man page: every option is in both' '
	ds-infer --help | grep -o -- "--[a-z][a-z-]*" | sort -u > help.opts &&
	sed -n "/^\.SH OPTIONS/,/^\.SH EXIT/p" "$TOP/man/man1/ds-infer.1" |
		grep -o "\\\\-\\\\-[a-z][a-z\\\\-]*" | sed "s/\\\\//g" | sort -u > man.opts &&
	diff help.opts man.opts
'
