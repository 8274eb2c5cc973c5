#!/usr/bin/env python3
"""Write a deterministic BATCH.json for `qwen2_ref.py train` from a seed.

    qwen2_batch.py [--seed 1] [--vocab 300] [--steps 3] [--max-len 96]
                   [--empty-step] [-o BATCH.json]

{"steps": [[sample, ...], ...]}, sample = {"ids", "mask", "doc_len"}. The
first three steps are laid out on purpose, later ones are random:
  step 0: a packed sample of 3 documents with masked prompts (the first
          sample: its logits and the first step's gradients are recorded),
          an unpacked sample with the whole mask set, and a packed sample
          holding a 1-token document and a masked span in mid-document;
  step 1: a packed sample, and a sample with no targets at all: its mask is
          0 everywhere except on the first token of each document, which is
          never a target (an engine that predicts across document boundaries
          or counts a document's first token gets a different ntok);
  step 2: two samples of different lengths.
Throughout, the first token of a document often has mask 1 for the same
reason. --empty-step appends a step whose samples have no target at all
(loss 0, zero gradients: AdamW still steps). Only Python's random module
is used, so the output depends on the seed alone.
"""
import argparse
import json
import random
import sys


class Gen:
    def __init__(self, seed, vocab, max_len):
        self.r = random.Random(seed)
        self.vocab = vocab
        self.max_len = max_len

    def doc(self, n, prompt=None, hole=False, first=None):
        """ids and mask of one document of n tokens: mask 0 on a prompt of
        `prompt` tokens (random when None), optionally a masked hole later;
        mask of the first token is `first` (random when None)."""
        r = self.r
        ids = [r.randrange(self.vocab) for _ in range(n)]
        if prompt is None:
            prompt = r.randint(1, max(1, n // 2))
        mask = [0] * min(prompt, n) + [1] * max(0, n - prompt)
        if hole and n - prompt >= 4:
            a = r.randint(prompt + 1, n - 2)
            b = r.randint(a + 1, n - 1)
            for i in range(a, b):
                mask[i] = 0
        if n:
            mask[0] = r.randint(0, 1) if first is None else first
        return ids, mask

    def sample(self, lens, **kw):
        ids, mask = [], []
        for n in lens:
            i, m = self.doc(n, **kw)
            ids += i
            mask += m
        return {"ids": ids, "mask": mask, "doc_len": list(lens)}

    def lens(self, k, lo=1, hi=None):
        hi = hi or self.max_len // k
        return [self.r.randint(lo, hi) for _ in range(k)]


def make(seed, vocab, steps, max_len, empty_step):
    g = Gen(seed, vocab, max_len)
    r = g.r
    out = []
    # step 0
    s0 = g.sample(g.lens(3, 8, max_len // 3))
    s1 = g.sample([r.randint(12, max_len // 2)], prompt=0)
    s1["mask"] = [1] * len(s1["ids"])
    a, b = r.randint(10, max_len // 3), r.randint(12, max_len // 3)
    s2 = {"ids": [], "mask": [], "doc_len": [a, 1, b]}
    for n, hole in ((a, True), (1, False), (b, True)):
        i, m = g.doc(n, hole=hole, first=1)
        s2["ids"] += i
        s2["mask"] += m
    out.append([s0, s1, s2])
    # step 1
    s0 = g.sample(g.lens(2, 6, max_len // 2))
    dl = [r.randint(2, 10), 1, r.randint(2, 10)]
    s1 = g.sample(dl)
    s1["mask"] = []
    for n in dl:
        s1["mask"] += [1] + [0] * (n - 1)
    out.append([s0, s1])
    # step 2
    out.append([g.sample(g.lens(1, 4, max_len)), g.sample(g.lens(4, 1, max_len // 4), hole=True)])
    # random steps
    for _ in range(3, steps):
        out.append([g.sample(g.lens(r.randint(1, 4), 1, max_len // 4), hole=r.random() < 0.5)
                    for _ in range(r.randint(1, 3))])
    out = out[:steps]
    if empty_step:
        s = g.sample([r.randint(1, 6), r.randint(1, 6)])
        s["mask"] = [0] * len(s["ids"])
        out.append([s, {"ids": [r.randrange(vocab)], "mask": [1], "doc_len": [1]}])
    for st in out:
        for s in st:
            assert sum(s["doc_len"]) == len(s["ids"]) == len(s["mask"])
            assert all(n > 0 for n in s["doc_len"]) and len(s["ids"]) <= max_len
    return {"steps": out}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=300)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--max-len", type=int, default=96, help="longest sample (tokens)")
    ap.add_argument("--empty-step", action="store_true",
                    help="append a step with no target at all")
    ap.add_argument("-o", "--output", default="-")
    a = ap.parse_args(argv)
    if a.max_len < 48:
        ap.error("--max-len must be at least 48")
    batch = make(a.seed, a.vocab, a.steps, a.max_len, a.empty_step)
    text = json.dumps(batch, separators=(",", ":")) + "\n"
    if a.output == "-":
        sys.stdout.write(text)
    else:
        with open(a.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
