#!/usr/bin/env python3
"""Math-Verify's verdict on (gold, predicted) pairs, the oracle of t-judge.

Reads JSONL {"gold": ..., "pred": ...} on stdin and prints one line per
pair: {"i": N, "equal": true|false}. gold is a reference answer as records
carry it (the `answer` field: the content of the reference's \\boxed{}, as
DESIGN.md defines it), pred an answer as a reply's last \\boxed{} holds it.
Both are parsed as "\\boxed{...}", so that what is compared is
Math-Verify's equivalence, not its choice among several answers in a
reply (it takes the first \\boxed{}, ds-judge the last; it ignores
\\fbox). The verdict is verify(parse(gold), parse(pred)).
"""
import json
import sys

from math_verify import parse, verify


def main():
    for i, line in enumerate(sys.stdin):
        if not line.strip():
            continue
        p = json.loads(line)
        try:
            g = parse("\\boxed{" + p["gold"] + "}", parsing_timeout=None)
            c = parse("\\boxed{" + p["pred"] + "}", parsing_timeout=None)
            eq = bool(verify(g, c, timeout_seconds=None))
        except Exception:  # math-verify's own failure: not equal
            eq = False
        print(json.dumps({"i": i, "equal": eq}), flush=False)


if __name__ == "__main__":
    main()
