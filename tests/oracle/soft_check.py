#!/usr/bin/env python3
"""Check a shard's soft labels against the teacher model itself: at each
position with soft labels, the K (id, logprob) pairs must be the top K of
log_softmax of the teacher's logits (transformers, fp32 model, float64
softmax) for the tokens before it.

    soft_check.py --model DIR [--tol 1e-4] < INSPECT.jsonl

INSPECT.jsonl is `ds-tokenize inspect --json` output: one sample a line,
"input_ids", "docs" and "soft" ([[position, [id, logprob, ...]], ...]).
Each document runs alone from position 0. The j-th logprob given must be
the reference's j-th largest within --tol, and each id's reference logprob
the one given within --tol (ids may differ only at near-ties). Prints
{"samples", "positions", "max_abs_diff"}; exits 1 on a mismatch.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).eval()
    n_samples = n_pos = 0
    worst = 0.0
    for line in sys.stdin:
        s = json.loads(line)
        soft = {p: alt for p, alt in s.get("soft", [])}
        off = 0
        for n in s["docs"]:
            ids = s["input_ids"][off:off + n]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].double()
            ref = torch.log_softmax(logits, -1)
            for p in range(off + 1, off + n):
                if p not in soft:
                    continue
                alt = soft[p]
                got_ids, got_lp = alt[0::2], alt[1::2]
                row = ref[p - off - 1]
                top = torch.topk(row, len(got_ids)).values.tolist()
                for j, (i, lp) in enumerate(zip(got_ids, got_lp)):
                    d = max(abs(float(row[i]) - lp), abs(top[j] - lp))
                    worst = max(worst, d)
                    if d > a.tol:
                        sys.exit(f"sample {n_samples} position {p}: alternative {j} id {i} logprob {lp}, "
                                 f"the teacher's {float(row[i])} (its {j}-th largest {top[j]})")
                n_pos += 1
            off += n
        n_samples += 1
    print(json.dumps({"samples": n_samples, "positions": n_pos, "max_abs_diff": worst}))
    if not n_pos:
        sys.exit("no soft labels to check")


if __name__ == "__main__":
    main()
