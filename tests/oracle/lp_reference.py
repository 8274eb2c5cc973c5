#!/usr/bin/env python3
"""teacher.logprobs as the contract (issue #21) builds it, independently of
ds-teacher: for each record of ds-teacher's output FILE, ask the server at
URL the same question (the prompt is the problem: run ds-teacher with
--template holding only {problem}) with logprobs true, top_logprobs K, and
build the compact object from the server's own entries. Prints one line per
record that differs, and exits 1 if any does, or if the object breaks the
contract's invariants: three arrays of one length, 2K values per top list,
and the tokens' bytes joined are the raw completion (message content, or
reasoning_content + "\\n</think>\\n\\n" + content when the server split it).

    DS_API_KEY=KEY lp_reference.py URL K FILE
"""
import json
import math
import os
import sys
import urllib.request


def tok(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return list(b)


def lp(x: float) -> float:
    return float("%.6g" % max(x, -9999.0))


def entry_bytes(e) -> bytes:
    return bytes(e["bytes"]) if e.get("bytes") is not None else e["token"].encode("utf-8")


def reference(url: str, k: int, problem: str):
    body = {"model": "x", "messages": [{"role": "user", "content": problem}],
            "temperature": 0.6, "logprobs": True, "top_logprobs": k}
    rq = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode(),
                                {"Content-Type": "application/json",
                                 "Authorization": "Bearer " + os.environ.get("DS_API_KEY", "")})
    with urllib.request.urlopen(rq) as r:
        c = json.load(r)["choices"][0]
    ents, m = c["logprobs"]["content"], c["message"]
    raw = m["content"]
    if m.get("reasoning_content") is not None:
        raw = m["reasoning_content"] + "\n</think>\n\n" + m["content"]
    obj = {"k": k, "tokens": [tok(entry_bytes(e)) for e in ents],
           "logprob": [lp(e["logprob"]) for e in ents],
           "top": [[v for t in e["top_logprobs"][:k] for v in (tok(entry_bytes(t)), lp(t["logprob"]))]
                   for e in ents]}
    return obj, raw.encode("utf-8")


def main() -> int:
    url, k, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    bad = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            got = rec["teacher"]["logprobs"]
            want, raw = reference(url, k, rec["problem"])
            spelt = b"".join(t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in got["tokens"])
            n = len(got["tokens"])
            why = None
            if got != want:
                why = "differs from the reference"
            elif not (len(got["logprob"]) == len(got["top"]) == n > 0):
                why = "arrays of different lengths"
            elif any(len(t) != 2 * k for t in got["top"]):
                why = "a top list is not 2K long"
            elif spelt != raw:
                why = f"tokens spell {spelt[:60]!r}..., not the raw completion"
            elif any(not math.isfinite(x) for x in got["logprob"]):
                why = "a logprob is not finite"
            if why:
                print(f"{rec['id']}: {why}")
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
