#!/bin/sh
# make demo: run the part of the chain that exists, offline, on embedded data.
#
# ds-fetch reads a generated problem set (arithmetic with exact answers);
# the teacher and judge stages are stood in for by a deterministic rule
# that gets every fifth problem wrong (ds-teacher needs an API or a served
# model, ds-judge is not built yet), so the rejection path shows too; then
# ds-sharegpt and ds-tokenize run as a user would run them, ending in
# token shards for ds-train (not built yet).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
PATH=$top/bin:$PATH
out=$top/build/demo
rm -rf "$out" && mkdir -p "$out/data"

echo "== the chain in this build"
for p in ds-fetch ds-teacher ds-judge ds-sharegpt ds-tokenize ds-train ds-infer; do
	if $p --version >/dev/null 2>&1; then echo "   $p: $($p --version)"
	else echo "   $p: placeholder (exits 2)"; fi
done

echo "== ds-fetch: a local problem set through a jq mapping"
awk 'BEGIN { for (i = 1; i <= 20; i++) { a = (i * 37) % 90 + 10; b = (i * 53) % 90 + 10
	printf "{\"q\":\"What is %d + %d?\",\"a\":%d}\n", a, b, a + b } }' > "$out/arith.jsonl"
ds-fetch -o "$out/problems.jsonl" --map '{domain: "math", problem: .q, answer: (.a | tostring)}' "$out/arith.jsonl"

echo "== teacher and judge (stood in for by a rule that errs on every fifth problem)"
jq -c '(.id | split("/") | last | tonumber + 1) as $n
  | (.problem | [scan("[0-9]+") | tonumber] | add) as $sum
  | (if $n % 5 == 0 then $sum + 1 else $sum end) as $said
  | . + {teacher: {model: "rule", reasoning: "Add the tens, then the ones: \(.problem | ltrimstr("What is ") | rtrimstr("?")) = \($said).",
                   content: "The sum is $\\boxed{\($said)}$.", finish_reason: "stop", sample: 0},
         judge: {verdict: (if $said == $sum then "correct" else "incorrect" end), method: "math",
                 predicted: ($said | tostring), reason: "rule"}}' "$out/problems.jsonl" > "$out/judged.jsonl"
echo "   $(wc -l < "$out/judged.jsonl") records in $out/judged.jsonl"

echo "== ds-sharegpt"
ds-sharegpt -o "$out/data/distill.jsonl" -r "$out/rejected.jsonl" "$out/judged.jsonl"
ds-sharegpt --dataset-info distill -o "$out/data/distill.jsonl" > "$out/data/dataset_info.json"
echo "== again with the same output: a restart adds nothing"
ds-sharegpt -o "$out/data/distill.jsonl" -r "$out/rejected.jsonl" "$out/judged.jsonl"

echo "== the first training conversation"
head -1 "$out/data/distill.jsonl" | jq .

echo "== ds-tokenize: the Qwen chat template, loss masks, packed token shards"
ds-tokenize -t "$top/tests/data/qwen/tokenizer.json.zst" --cutoff-len 1024 --pack \
	-o "$out/train.shards" "$out/data/distill.jsonl"
ds-tokenize inspect -t "$top/tests/data/qwen/tokenizer.json.zst" "$out/train.shards" | sed -n 1,12p
echo "== artefacts"
echo "   training data (LLaMA-Factory sharegpt): $out/data/distill.jsonl ($(wc -l < "$out/data/distill.jsonl") conversations)"
echo "   its dataset_info.json entry:           $out/data/dataset_info.json"
echo "   rejected, with reasons (for RL later):  $out/rejected.jsonl ($(wc -l < "$out/rejected.jsonl") records)"
echo "   token shards for ds-train:              $out/train.shards"
echo "   LLaMA-Factory reads $out/data as dataset_dir with dataset: distill"
