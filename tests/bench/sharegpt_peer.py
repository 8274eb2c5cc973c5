#!/usr/bin/env python3
"""The peer for `make bench`: the judged-records -> sharegpt conversion as
the Python scripts around the DeepSeek API do it (json module, one record
at a time), with ds-sharegpt's rules so both outputs can be compared byte
for byte."""
import json
import sys


def main():
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        rec = json.loads(line)
        t = rec["teacher"]
        verdict = (rec.get("judge") or {}).get("verdict", "correct")
        r = (t.get("reasoning") or "").strip(" \t\r\n")
        c = (t.get("content") or "").strip(" \t\r\n")
        p = rec["problem"].strip(" \t\r\n")
        if (verdict != "correct" or t.get("finish_reason") == "length" or not p
                or not r or not c or "<think>" in r or "</think>" in r
                or "</think>" in c):
            continue
        o = {"id": rec["id"], "sample": t.get("sample", 0), "system": "",
             "conversations": [
                 {"from": "user", "value": p},
                 {"from": "assistant",
                  "value": "<think>\n" + r + "\n</think>\n\n" + c}]}
        out.write(json.dumps(o, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")


if __name__ == "__main__":
    main()
