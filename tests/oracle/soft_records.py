#!/usr/bin/env python3
"""Give ShareGPT records' assistant replies a teacher's "logprobs" object
(ds-teacher(1)'s compact form), made with Hugging Face `tokenizers` from the
reply's own text, so that ds-tokenize --soft-labels can be checked against
an independent tokenization.

    soft_records.py --tokenizer tokenizer.json --k K [--seed S]
                    [--break unknown|text|split|none] [--prefix N] < in.jsonl > out.jsonl

Each assistant message gets {"k", "tokens", "logprob", "top"}: its value
encoded by `tokenizers` (the tokens from --prefix N characters on: the
teacher generated only that part, as a server's generation prompt may
start the reply), each token written as its bytes (a JSON string when they
are valid UTF-8, else a list of byte values), the token itself first among
its K alternatives. A side file (--expect PATH) receives, per record, the
alternatives' ids per reply token, for the test to compare with the shard.
--break spoils every record on purpose: `unknown` puts a token the
vocabulary lacks, `text` changes one token's bytes so the tokens spell
another text, `split` splits the first token of 2+ bytes into two tokens the
vocabulary has (a valid text, but not how the student encodes it).
"""
import argparse
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_logprobs import byte_decoder  # noqa: E402



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--break", dest="brk", default="none", choices=["none", "unknown", "text", "split"])
    ap.add_argument("--prefix", type=int, default=0)
    ap.add_argument("--expect")
    a = ap.parse_args()
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(a.tokenizer)
    dec = byte_decoder()
    vocab = tok.get_vocab()
    added = {t.content for t in tok.get_added_tokens_decoder().values()}

    def tbytes(i):
        s = tok.id_to_token(i)
        return s.encode() if s in added else bytes(dec[c] for c in s)

    def jtok(b):
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return list(b)

    rnd = random.Random(a.seed)
    ids_all = sorted(vocab.values())
    by_bytes = {tbytes(i): i for i in ids_all}
    expect = open(a.expect, "w") if a.expect else None
    for line in sys.stdin:
        rec = json.loads(line)
        msgs = rec.get("conversations") or rec.get("messages")
        exp = []
        for m in msgs:
            if m.get("from", m.get("role")) not in ("gpt", "assistant"):
                continue
            text = m.get("value", m.get("content"))[a.prefix:]
            ids = tok.encode(text, add_special_tokens=False).ids
            toks = [tbytes(i) for i in ids]
            if a.brk == "unknown":
                toks[len(toks) // 2] = b"\x01\x02\x03 no such token"
            elif a.brk == "text":
                toks[len(toks) // 2] = tbytes(ids[len(ids) // 2] + 1 if ids[len(ids) // 2] < 1000 else 100)
            elif a.brk == "split":
                j = next(j for j, b in enumerate(toks) if len(b) >= 2 and b[1:] in by_bytes)
                b = toks[j]
                toks[j:j + 1] = [b[:1], b[1:]]
                ids[j:j + 1] = [by_bytes[b[:1]], by_bytes[b[1:]]]
            top, lp, want = [], [], []
            for i, b in zip(ids, toks):
                alts = [i] + rnd.sample([x for x in ids_all if x != i and x < 5000], a.k - 1)
                # a teacher distribution: the token itself most likely, the K
                # together holding 50 to 97% of the mass
                w = sorted([rnd.uniform(0.0, 1.0) ** 4 for _ in range(a.k)], reverse=True)
                w[0] += 1.0
                mass = rnd.uniform(0.5, 0.97)
                lps = [math.log(x / sum(w) * mass) for x in w]
                row = []
                for x, y in zip(alts, lps):
                    row += [jtok(tbytes(x)), float(f"{y:.6g}")]
                top.append(row)
                lp.append(row[1])
                want.append([alts, [float(f"{y:.6g}") for y in lps]])
            m["logprobs"] = {"k": a.k, "tokens": [jtok(b) for b in toks], "logprob": lp, "top": top}
            exp.append(want)
        if expect:
            expect.write(json.dumps(exp) + "\n")
        sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
