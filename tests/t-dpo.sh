#!/bin/sh
# ds-sharegpt --format dpo: preference pairs from the judge's two streams.
# The expected pairs are derived from the input by jq alone, following the
# rules of the man page; LLaMA-Factory's own loader (the path its DPO
# workflow takes) reads what we write with the entry we print.
. "$(dirname "$0")/lib.sh"
ACC=$DATA/dpo/accepted.jsonl
REJ=$DATA/dpo/rejected.jsonl

# The pairs the man page promises, in jq: usable samples (not cut off, with
# reasoning and content), grouped by id; correct ones (guided only when
# $g) and incorrect ones ($v) each put in order by the pick rule, ties to
# the unguided and then the lower sample number; the i-th of each paired.
# A chain ds-judge rejected for mentioning the given answer is on no side.
pairs_jq='
def strip: sub("^\\s+"; "") | sub("\\s+$"; "");
def text: "<think>\n" + (.teacher.reasoning | strip) + "\n</think>\n\n" + (.teacher.content | strip);
def order($rule): sort_by([(if $rule == "shortest" then (text | utf8bytelength)
	elif $rule == "longest" then -(text | utf8bytelength) else 0 end),
	(.teacher.guided // false), .teacher.sample]);
[.[] | select(.teacher.finish_reason != "length" and (.teacher.reasoning | strip) != ""
	and (.teacher.content | strip) != "")]
| group_by(.id)[]
| ([.[] | select(.judge.verdict == "correct" and ($g or (.teacher.guided // false | not)))] | order($c)) as $good
| ([.[] | select((.judge.verdict as $x | $v | index($x))
	and (.judge.reason | startswith("mentions the given answer: ") | not))] | order($r)) as $bad
| range([$n, ($good | length), ($bad | length)] | min) as $i
| {id: $good[$i].id, pair: $i, chosen_sample: $good[$i].teacher.sample,
   rejected_sample: $bad[$i].teacher.sample, user: ($good[$i].problem | strip),
   chosen: ($good[$i] | text), rejected: ($bad[$i] | text)}'
want() { # want CHOSEN-RULE REJECTED-RULE PAIRS GUIDED VERDICTS
	cat "$ACC" "$REJ" | jq -s -c --arg c "$1" --arg r "$2" --argjson n "$3" --argjson g "$4" \
		--argjson v "$5" "$pairs_jq"
}
got='{id, pair, chosen_sample, rejected_sample, user: .conversations[0].value,
      chosen: .chosen.value, rejected: .rejected.value}'

ok 'default pairs: first correct with first incorrect, one per problem, guided kept out of chosen' '
	ds-sharegpt -q -f dpo "$ACC" "$REJ" > out &&
	jq -c "$got" out > got &&
	want first first 1 false "[\"incorrect\"]" > want &&
	diff got want &&
	test "$(jq -r "[.id, .chosen_sample, .rejected_sample] | @tsv" out | tr "\t\n" ": ")" = \
		"dpo/a:0:1 dpo/b:0:1 dpo/h:1:2 dpo/i:0:1000 "
'

ok 'each pair is the layout LLaMA-Factory documents (conversations, chosen, rejected)' '
	ds-sharegpt -q -f dpo -s "Be brief." "$ACC" "$REJ" > out &&
	test "$(jq -c "[keys_unsorted, (.conversations | map(.from)), .chosen.from, .rejected.from, .system]" out | sort -u)" = \
		"[[\"id\",\"pair\",\"chosen_sample\",\"rejected_sample\",\"system\",\"conversations\",\"chosen\",\"rejected\"],[\"user\"],\"assistant\",\"assistant\",\"Be brief.\"]"
'

ok 'inputs need not be sorted or grouped: any order of any streams gives the same pairs' '
	ds-sharegpt -q -f dpo "$ACC" "$REJ" > a &&
	ds-sharegpt -q -f dpo "$REJ" "$ACC" > b &&
	cat "$ACC" "$REJ" | tac | ds-sharegpt -q -f dpo > c &&
	cat "$REJ" "$ACC" | awk "NR % 2" > odd && cat "$REJ" "$ACC" | awk "NR % 2 == 0" > even &&
	ds-sharegpt -q -f dpo even - < odd > d &&
	diff a b && diff a c && diff a d
'

ok '--pick-chosen shortest --pick-rejected longest' '
	ds-sharegpt -q -f dpo --pick-chosen shortest --pick-rejected longest "$ACC" "$REJ" > out &&
	jq -c "$got" out > got &&
	want shortest longest 1 false "[\"incorrect\"]" > want && diff got want &&
	test "$(jq -r "select(.id == \"dpo/a\") | [.chosen_sample, .rejected_sample] | @tsv" out)" = "$(printf "2\t3")"
'

ok '--pick-chosen longest --pick-rejected shortest' '
	ds-sharegpt -q -f dpo --pick-chosen longest --pick-rejected shortest "$ACC" "$REJ" > out &&
	jq -c "$got" out > got &&
	want longest shortest 1 false "[\"incorrect\"]" > want && diff got want &&
	test "$(jq -r "select(.id == \"dpo/a\") | [.chosen_sample, .rejected_sample] | @tsv" out)" = "$(printf "0\t1")"
'

ok 'a tie in length goes to the lower sample number (shortest and longest alike)' '
	for rule in shortest longest; do
		ds-sharegpt -q -f dpo --pick-chosen $rule "$ACC" "$REJ" > out &&
		test "$(jq -r "select(.id == \"dpo/h\") | .chosen_sample" out)" = 1 || return 1
	done
'

ok '--pairs 2: two pairs where two of each kind exist, no sample used twice' '
	ds-sharegpt -q -f dpo --pairs 2 "$ACC" "$REJ" > out 2> err &&
	jq -c "$got" out > got &&
	want first first 2 false "[\"incorrect\"]" > want && diff got want &&
	test "$(jq -r "select(.id == \"dpo/a\") | [.pair, .chosen_sample, .rejected_sample] | @tsv" out | tr "\t\n" ": ")" = "0:0:1 1:2:3 " &&
	ds-sharegpt -f dpo --pairs 2 "$ACC" "$REJ" 2>&1 > /dev/null | grep -q "4 paired (5 pairs written, 0 already done).*1 sample not picked"
'

ok '--rejected-verdicts incorrect,unparsable makes an unparsable answer a rejected one' '
	ds-sharegpt -q -f dpo --pairs 3 --rejected-verdicts incorrect,unparsable "$ACC" "$REJ" > out &&
	jq -c "$got" out > got &&
	want first first 3 false "[\"incorrect\",\"unparsable\"]" > want && diff got want &&
	ds-sharegpt -q -f dpo --rejected-verdicts unparsable "$ACC" "$REJ" > out &&
	test "$(jq -r "[.id, .rejected_sample] | @tsv" out)" = "$(printf "dpo/a\t4")"
'

ok 'a failed guided sample can be rejected; a guided correct one is chosen only with --include-guided yes' '
	ds-sharegpt -f dpo "$ACC" "$REJ" > out 2> err &&
	test "$(jq -r "select(.id == \"dpo/i\") | .rejected_sample" out)" = 1000 &&
	! jq -e "select(.id == \"dpo/e\")" out > /dev/null &&
	grep -q "1 guided sample kept out of chosen" err &&
	ds-sharegpt -q -f dpo --include-guided yes "$ACC" "$REJ" > out &&
	jq -c "$got" out > got && want first first 1 true "[\"incorrect\"]" > want && diff got want &&
	test "$(jq -r "select(.id == \"dpo/e\") | [.chosen_sample, .rejected_sample] | @tsv" out)" = "$(printf "1000\t0")"
'

ok 'SFT output keeps guided samples by default; --include-guided no sets them aside with the reason' '
	ds-sharegpt -q "$ACC" > out &&
	test "$(jq -r "select(.id == \"dpo/e\") | .sample" out)" = 1000 &&
	ds-sharegpt --include-guided no -r rej.jsonl "$ACC" > out2 2> err &&
	test "$(jq -r "[.id, .teacher.sample, .sharegpt.rejected] | @tsv" rej.jsonl | grep guided)" = \
		"$(printf "dpo/e\t1000\ta guided sample (--include-guided no)")" &&
	test "$(($(wc -l < out2) + 1))" = "$(wc -l < out)"
'

ok 'problems with only one kind are counted, and listed with --unpaired' '
	ds-sharegpt -f dpo --unpaired unpaired.jsonl "$ACC" "$REJ" > out 2> err &&
	grep -q "dpo: 9 problems: 4 paired (4 pairs written, 0 already done), 2 with only correct samples, 3 with only incorrect ones" err &&
	cat > want <<-EOT &&
	{"id":"dpo/c","correct":2,"incorrect":0,"guided_kept_out":0}
	{"id":"dpo/d","correct":0,"incorrect":2,"guided_kept_out":0}
	{"id":"dpo/e","correct":0,"incorrect":1,"guided_kept_out":1}
	{"id":"dpo/f","correct":0,"incorrect":1,"guided_kept_out":0}
	{"id":"dpo/j","correct":1,"incorrect":0,"guided_kept_out":0}
	EOT
	diff unpaired.jsonl want &&
	grep -q "3 samples not picked" err
'

ok 'unusable samples, and a chain rejected for mentioning the given answer, go to --rejected with the reason' '
	ds-sharegpt -f dpo -r rej.jsonl "$ACC" "$REJ" > out 2> err &&
	jq -r "[.id, .teacher.sample, .sharegpt.rejected] | @tsv" rej.jsonl | sort > got &&
	printf "%s\t%s\t%s\n" \
		dpo/a 4 "judge verdict is neither \"correct\" nor one of --rejected-verdicts" \
		dpo/f 0 "teacher output cut off (finish_reason \"length\")" \
		dpo/g 0 "judge verdict is neither \"correct\" nor one of --rejected-verdicts" \
		dpo/j 1000 "a guided chain that mentions the given answer (neither chosen nor rejected)" > want &&
	diff got want &&
	grep -q "23 read, 4 written, 4 rejected" err
'

ok '--dataset-info -f dpo prints the ranking entry' '
	ds-sharegpt --dataset-info prefs -f dpo -o data/prefs.jsonl > info.json &&
	test "$(jq -c .prefs info.json)" = "{\"file_name\":\"prefs.jsonl\",\"formatting\":\"sharegpt\",\"ranking\":true,\"columns\":{\"messages\":\"conversations\",\"chosen\":\"chosen\",\"rejected\":\"rejected\",\"system\":\"system\"},\"tags\":{\"role_tag\":\"from\",\"content_tag\":\"value\",\"user_tag\":\"user\",\"assistant_tag\":\"assistant\",\"system_tag\":\"system\",\"observation_tag\":\"observation\",\"function_tag\":\"function_call\"}}"
'

# ---- restarts and bounds ---------------------------------------------------

ok 'a rerun with the same -o and -r adds nothing and duplicates nothing' '
	ds-sharegpt -q -f dpo -o out.jsonl -r rej.jsonl "$ACC" "$REJ" &&
	cp out.jsonl first.jsonl &&
	ds-sharegpt -f dpo -o out.jsonl -r rej.jsonl "$REJ" "$ACC" 2> err &&
	diff out.jsonl first.jsonl && test "$(wc -l < rej.jsonl)" = 4 &&
	grep -q "0 written, 0 rejected, 4 already done" err &&
	grep -q "(0 pairs written, 4 already done)" err
'

ok 'a pair cut short by a kill is removed and written again' '
	ds-sharegpt -q -f dpo "$ACC" "$REJ" > want &&
	head -1 want > out.jsonl && sed -n 2p want | head -c 50 >> out.jsonl &&
	ds-sharegpt -q -f dpo -o out.jsonl "$ACC" "$REJ" &&
	diff out.jsonl want
'

ok 'killed with -9, a rerun ends with every pair once; the temporary file never outlives the run' '
	i=0; while [ $i -lt 20000 ]; do i=$((i+1));
		echo "{\"id\":\"k/$i\",\"problem\":\"p$i\",\"teacher\":{\"reasoning\":\"r$i\",\"content\":\"c$i\",\"sample\":0},\"judge\":{\"verdict\":\"correct\"}}"
		echo "{\"id\":\"k/$i\",\"problem\":\"p$i\",\"teacher\":{\"reasoning\":\"w$i\",\"content\":\"x$i\",\"sample\":1},\"judge\":{\"verdict\":\"incorrect\"}}"
	done > in.jsonl &&
	mkdir tmp && export TMPDIR=$PWD/tmp &&
	ds-sharegpt -q -f dpo in.jsonl > want &&
	{ ds-sharegpt -q -f dpo -o out.jsonl in.jsonl & pid=$!; } &&
	sleep 0.4; kill -9 $pid 2>/dev/null || :; wait $pid 2>/dev/null || :;
	n=$(wc -l < out.jsonl) &&
	test -z "$(ls tmp)" &&
	ds-sharegpt -q -f dpo -o out.jsonl in.jsonl &&
	diff out.jsonl want && test "$(wc -l < want)" = 20000 &&
	test -z "$(ls tmp)" &&
	echo "killed after $n of 20000 pairs"
'

if [ -x /usr/bin/time ]; then
ok 'memory holds an index, not the texts: 40 MB of chains pair within 20 MB of what 1 MB takes' '
	mk() { r=$(head -c $2 /dev/zero | tr "\0" y) &&
		awk -v n=$1 -v r="$r" "BEGIN { for (i = 0; i < n; i++) for (s = 0; s < 2; s++)
		printf \"{\\\"id\\\":\\\"m/%d\\\",\\\"problem\\\":\\\"p\\\",\\\"teacher\\\":{\\\"reasoning\\\":\\\"%s\\\",\\\"content\\\":\\\"c\\\",\\\"sample\\\":%d},\\\"judge\\\":{\\\"verdict\\\":\\\"%s\\\"}}\n\", i, r, s, s ? \"incorrect\" : \"correct\" }"; } &&
	mk 2000 250 > small.jsonl && mk 2000 10000 > big.jsonl &&
	test "$(wc -c < big.jsonl)" -gt 40000000 &&
	# (under ASan, freed memory waits in a quarantine of up to 256 MB: none here)
	rss() { ASAN_OPTIONS=$ASAN_OPTIONS:quarantine_size_mb=0 /usr/bin/time -f %M ds-sharegpt -q -f dpo "$1" 2>&1 > /dev/null | tail -1; } &&
	s=$(rss small.jsonl) && b=$(rss big.jsonl) && echo "max RSS: $s kB (1 MB in), $b kB (40 MB in)" >&2 &&
	test $((b - s)) -lt 20000
'
else
	skip 'memory holds an index, not the texts' 'no /usr/bin/time'
fi

# ---- bad input ----------------------------------------------------------------

ok 'a record without a judge object stops -f dpo, naming the line; --skip-bad counts it' '
	{ head -2 "$ACC"; echo "{\"id\":\"x\",\"problem\":\"p\",\"teacher\":{\"reasoning\":\"r\",\"content\":\"c\"}}"; } > in.jsonl &&
	expect_exit 1 ds-sharegpt -f dpo in.jsonl > out 2> err &&
	grep -q "^ds-sharegpt:in.jsonl:3: no \"judge\" object" err && test ! -s out &&
	ds-sharegpt -f dpo --skip-bad in.jsonl "$REJ" > out 2> err &&
	grep -q "1 bad line skipped" err && test "$(wc -l < out)" = 1
'

ok 'a full disk is an error (> /dev/full)' '
	expect_exit 1 ds-sharegpt -q -f dpo "$ACC" "$REJ" > /dev/full 2> err &&
	grep -q "write error" err
'

ok 'usage errors exit 2' '
	expect_exit 2 ds-sharegpt -f dpo --pairs 0 2> err && grep -q "^usage: ds-sharegpt" err &&
	expect_exit 2 ds-sharegpt -f dpo --pick-chosen random 2> err && grep -q "unknown pick rule" err &&
	expect_exit 2 ds-sharegpt --pairs 2 2> err && grep -q "go with -f dpo" err &&
	expect_exit 2 ds-sharegpt -f dpo --rejected-verdicts correct 2> err &&
	expect_exit 2 ds-sharegpt --include-guided maybe 2> err &&
	expect_exit 2 ds-sharegpt -f dpo -o a --unpaired a 2> err
'

# ---- LLaMA-Factory ----------------------------------------------------------

if ! [ -x "$PY" ] || ! "$PY" -c 'import llamafactory' 2>/dev/null; then
	skip 'LLaMA-Factory (stage dpo) loads ds-sharegpt -f dpo output' 'no tests/.venv with llamafactory: run tests/setup-venv.sh'
	exit 0
fi
TOK=$WORK/tok
qwen_tokenizer "$TOK" || exit 1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME=$WORK/hf TRANSFORMERS_VERBOSITY=error

ok 'LLaMA-Factory (stage dpo) loads the pairs with the printed entry and sees each side whole' '
	mkdir data &&
	ds-sharegpt -q -f dpo --include-guided yes --pairs 2 -s "Reason carefully." -o data/prefs.jsonl "$ACC" "$REJ" &&
	ds-sharegpt --dataset-info prefs -f dpo -o data/prefs.jsonl > data/dataset_info.json &&
	"$PY" "$TOP/tests/oracle/lf_dpo.py" data prefs "$TOK" > lf.jsonl 2> lf.err || { tail -20 lf.err; false; } &&
	jq -c "{system, user: .prompt[0].content, n: (.prompt | length), chosen: .chosen_trained, rejected: .rejected_trained}" lf.jsonl > got &&
	want first first 2 true "[\"incorrect\"]" |
		jq -c "{system: \"Reason carefully.\", user, n: 1, chosen: (.chosen + \"<|im_end|>\n\"), rejected: (.rejected + \"<|im_end|>\n\")}" > want &&
	test "$(wc -l < want)" = 6 &&
	diff got want &&
	jq -r .chosen_text lf.jsonl | head -2 | tail -1 | grep -qx "Reason carefully.<|im_end|>"
'
