#!/usr/bin/env python3
"""Math-Verify's verdict on whole replies, the oracle of t-judge-corpus.

Reads the reply corpus (tests/data/judge/replies.jsonl: {"gold",
"content", "reasoning", ...}) on stdin and prints one line per record:
{"i": N, "equal": true|false, "pred": [...]}. The reply is what ds-judge
judges: content, or the reasoning when content is empty (a reply cut
short). It is parsed as Math-Verify's users parse a model's output,
parse(reply) with the default extraction (LaTeX and plain expressions, its
priorities between boxes, "final answer" phrases, "answer" and the last
expression); the gold as tests/oracle/mathverify.py parses it,
parse("\\boxed{gold}"). The verdict is verify(gold, pred); "pred" is the
string of what parse extracted, to read the disagreements by.

    tests/.venv/bin/python tests/oracle/mathverify_replies.py \
        < tests/data/judge/replies.jsonl > tests/data/judge/replies-mathverify.jsonl

Slow (sympy): run once, offline; the verdicts are committed as data.
Arguments: the number of processes (4), and N to judge only every Nth
record (1: all), as t-judge-corpus does to check the stored verdicts
against the installed Math-Verify in a few seconds.
"""
import json
import logging
import sys
import warnings
from multiprocessing import Pool


def judge(line):
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    from math_verify import parse, verify
    p = json.loads(line)
    text = p["content"] if p["content"] else p["reasoning"]
    try:
        g = parse("\\boxed{" + p["gold"] + "}", parsing_timeout=None)
        c = parse(text, parsing_timeout=None)
        eq = bool(verify(g, c, timeout_seconds=None))
        shown = [str(x) for x in c]
    except Exception:  # math-verify's own failure: not equal
        eq, shown = False, []
    return eq, shown


def main():
    lines = [l for l in sys.stdin if l.strip()]
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    every = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    index = list(range(0, len(lines), every))
    with Pool(jobs) as pool:
        for i, (eq, shown) in zip(index, pool.imap(judge, [lines[i] for i in index], chunksize=16)):
            print(json.dumps({"i": i, "equal": eq, "pred": shown}, ensure_ascii=False))


if __name__ == "__main__":
    main()
