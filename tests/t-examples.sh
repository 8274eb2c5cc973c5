#!/bin/sh
# examples/: every Makefile parses, its dry run prints the cost estimate and
# the commands, and every option those commands pass is one the program
# documents in its --help (so the examples cannot drift from the programs).
. "$(dirname "$0")/lib.sh"

for mk in "$TOP"/examples/*/Makefile; do
	ex=$(basename "$(dirname "$mk")")
	ok "examples/$ex: the dry run succeeds, with an estimate and every stage" '
		make -s -C "$(dirname "$mk")" dry-run > out 2> err || { cat err; false; } &&
		grep -q "^estimate: [0-9]* problems" out &&
		for p in ds-fetch ds-teacher ds-judge ds-sharegpt ds-tokenize ds-train ds-infer; do
			grep -q "^$p " out || fail "no $p command in the dry run"
		done'
	ok "examples/$ex: every option its commands use is in the program's --help" '
		make -s -C "$(dirname "$mk")" dry-run > out 2> /dev/null &&
		sed -e ":a" -e "/\\\\$/N; s/\\\\\\n//; ta" out | tr ";&|\t" "\n\n\n " |
			sed -e "s/^ *//" -e "s/^do //" | grep "^ds-" > cmds &&
		test "$(wc -l < cmds)" -ge 10 &&
		while read -r prog rest; do
			$prog --help > help 2>&1 || true
			for opt in $(printf " %s\n" "$rest" | grep -o -- " --[a-z][a-z-]*" | sort -u); do
				grep -q -- "$opt" help || fail "$prog: $opt is not in its --help"
			done
		done < cmds'
done

# make demo, short: every stage runs and leaves its artefact (the full demo
# trains 100 epochs; accuracy is its business, not this test's).
ok 'make demo runs the whole chain (3 epochs here)' '
	DEMO_DIR=$PWD/demo EPOCHS=3 sh "$TOP/examples/demo.sh" > log 2>&1 || { tail -30 log; false; } &&
	grep -q "held-out accuracy before: 0/21" log && grep -q "held-out accuracy after: [0-9]*/21" log &&
	for f in problems.jsonl answers.jsonl judged.jsonl rejected.jsonl data/distill.jsonl train.shard \
		student/model.safetensors student/training_loss.svg answers-before.jsonl answers-after.jsonl; do
		test -s demo/$f || fail "no $f"
	done &&
	test "$(wc -l < demo/answers-after.jsonl)" = 21 && test "$(wc -l < demo/rejected.jsonl)" -gt 0'
