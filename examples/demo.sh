#!/bin/sh
# make demo: run the part of the chain that exists, offline, on embedded data.
#
# Today ds-sharegpt is the one complete program; the stages before it
# (ds-fetch, ds-teacher, ds-judge) are placeholders. So the demo makes the
# judged records those stages would write -- arithmetic problems whose
# "teacher" is a deterministic rule that gets every fifth one wrong, so the
# rejection path shows too -- and runs ds-sharegpt on them as a user would.
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

echo "== judged records (what ds-fetch | ds-teacher | ds-judge will write)"
awk 'BEGIN {
	for (i = 1; i <= 20; i++) {
		a = (i * 37) % 90 + 10; b = (i * 53) % 90 + 10; c = a + b
		wrong = (i % 5 == 0); said = wrong ? c + 1 : c
		printf "{\"id\":\"demo/arith/%d\",\"source\":\"demo\",\"domain\":\"math\",", i
		printf "\"problem\":\"What is %d + %d?\",\"answer\":\"%d\",\"meta\":{},", a, b, c
		printf "\"teacher\":{\"model\":\"rule\",\"reasoning\":\"Add the tens, then the ones: %d + %d = %d.\",", a, b, said
		printf "\"content\":\"The sum is $\\\\boxed{%d}$.\",\"finish_reason\":\"stop\",\"sample\":0},", said
		printf "\"judge\":{\"verdict\":\"%s\",\"method\":\"math\",\"predicted\":\"%d\",\"reason\":\"%s\"}}\n",
			wrong ? "incorrect" : "correct", said, wrong ? "does not match the reference" : "matches the reference"
	}
}' > "$out/judged.jsonl"
echo "   $(wc -l < "$out/judged.jsonl") records in $out/judged.jsonl"

echo "== ds-sharegpt"
ds-sharegpt -o "$out/data/distill.jsonl" -r "$out/rejected.jsonl" "$out/judged.jsonl"
ds-sharegpt --dataset-info distill -o "$out/data/distill.jsonl" > "$out/data/dataset_info.json"
echo "== again with the same output: a restart adds nothing"
ds-sharegpt -o "$out/data/distill.jsonl" -r "$out/rejected.jsonl" "$out/judged.jsonl"

echo "== the first training conversation"
head -1 "$out/data/distill.jsonl" | jq .
echo "== artefacts"
echo "   training data (LLaMA-Factory sharegpt): $out/data/distill.jsonl ($(wc -l < "$out/data/distill.jsonl") conversations)"
echo "   its dataset_info.json entry:           $out/data/dataset_info.json"
echo "   rejected, with reasons (for RL later):  $out/rejected.jsonl ($(wc -l < "$out/rejected.jsonl") records)"
echo "   LLaMA-Factory reads $out/data as dataset_dir with dataset: distill"
