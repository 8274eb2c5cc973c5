#!/usr/bin/env python3
"""Reference distillation loss (soft labels + cross-entropy) on a tiny Qwen2,
in PyTorch with autograd: what `ds-train check-step --kd-alpha ...` is held to.

    kd_ref.py addsoft --batch B.json --k K --seed S [--skip 0.2] -o OUT.json
    kd_ref.py train   --model DIR --batch B.json -o OUT.safetensors
                      --kd-alpha A [--kd-temperature T]
                      [--kd-loss forward_kl|reverse_kl|jsd] [--kd-jsd-beta B]
                      [qwen2_ref.py train's options]

addsoft: gives trained positions of each sample (not the first of a
  document; a fraction --skip left without) soft labels as ds-tokenize
  inspect --json prints them, "soft": [[pos, [id, logprob, ...]], ...]: the
  top K of a random teacher distribution over the vocabulary, so the label is
  sometimes among them and sometimes not, and the K log-probabilities leave
  some mass outside.

train: qwen2_ref.train with the loss below, in float64 from the model's fp32
  logits, over the full vocabulary (gather, a masked logsumexp for the rest,
  autograd for every gradient), written from the published formulas:
  Hinton et al.'s tau^2-scaled KL on tempered distributions, TRL's
  generalized_jsd_loss (beta 0 = KL(teacher||student), 1 = KL(student||
  teacher), else beta KL(T||M) + (1-beta) KL(S||M), M = beta T + (1-beta) S),
  over K + 1 outcomes: the teacher's top K and one bucket for the rest.
  Teacher: softmax over [lp_k / tau, log(r) / tau], r = max(1 - sum exp lp,
  1e-6). Per trained position: alpha tau^2 KD + (1 - alpha) CE where it has
  soft labels, CE where not; summed and divided by the trained positions of
  the step. Also records per step "ce" (mean CE over the trained positions)
  and "kd" (mean KD over those with soft labels).
"""
import argparse
import json
import math
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import qwen2_ref as Q  # noqa: E402
import torch  # noqa: E402

REST_MIN = 1e-6


def kd_term(z, top, lq, kind, tau, beta):
    """The KD term of one position: z (V,) float64 logits, top (K,) ids,
    lq (K,) the teacher's log-probabilities."""
    logp = torch.log_softmax(z / tau, -1)
    rest = torch.ones_like(z, dtype=torch.bool)
    rest[top] = False
    logP = torch.cat([logp[top], torch.logsumexp(logp[rest], 0, keepdim=True)])
    r = max(1.0 - float(torch.exp(lq).sum()), REST_MIN)
    a = torch.cat([lq / tau, torch.tensor([math.log(r) / tau], dtype=torch.float64)])
    logQ = a - torch.logsumexp(a, 0)
    P, Qp = logP.exp(), logQ.exp()
    if kind == "jsd" and beta <= 0:
        kind = "forward_kl"
    if kind == "jsd" and beta >= 1:
        kind = "reverse_kl"
    if kind == "forward_kl":
        return (Qp * (logQ - logP)).sum()
    if kind == "reverse_kl":
        return (P * (logP - logQ)).sum()
    logM = torch.logsumexp(torch.stack([logQ + math.log(beta), logP + math.log1p(-beta)]), 0)
    return beta * (Qp * (logQ - logM)).sum() + (1 - beta) * (P * (logP - logM)).sum()


def make_loss(alpha, tau, kind, beta):
    def loss_fn(model, samples, vocab, keep_logits=False):
        total, ntok, nsoft, ce_sum, kd_sum = None, 0, 0, 0.0, 0.0
        first = None
        for si, s in enumerate(samples):
            ids, mask, docs = Q.check_sample(s, vocab)
            soft = {p: alt for p, alt in s.get("soft", [])}
            parts, off = [], 0
            for n in docs:
                logits = Q.forward(model, ids[off:off + n])
                if keep_logits and si == 0:
                    parts.append(logits.detach().clone())
                for t in range(n - 1):
                    pos = off + t + 1
                    if not mask[pos]:
                        continue
                    z = logits[t].double()
                    ce = torch.logsumexp(z, 0) - z[ids[pos]]
                    row = ce
                    ce_sum += float(ce.detach())
                    if pos in soft and alpha > 0:
                        alt = soft[pos]
                        top = torch.tensor(alt[0::2], dtype=torch.long)
                        lq = torch.tensor(alt[1::2], dtype=torch.float64)
                        kd = kd_term(z, top, lq, kind, tau, beta)
                        kd_sum += float(kd.detach())
                        nsoft += 1
                        row = alpha * tau * tau * kd + (1 - alpha) * ce
                    total = row if total is None else total + row
                    ntok += 1
                off += n
            if keep_logits and si == 0:
                first = torch.cat(parts, 0)
        extra = {"ce": ce_sum / ntok if ntok else 0.0, "kd": kd_sum / nsoft if nsoft else 0.0}
        return total, ntok, first, extra
    return loss_fn


def cmd_addsoft(a):
    with open(a.batch) as f:
        b = json.load(f)
    rnd = random.Random(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    vocab = a.vocab
    for step in b["steps"]:
        for s in step:
            soft, off = [], 0
            for n in s["doc_len"]:
                for p in range(off + 1, off + n):
                    if not s["mask"][p] or rnd.random() < a.skip:
                        continue
                    # a peaked random teacher, the label often (not always) likely
                    z = torch.randn(vocab, generator=gen, dtype=torch.float64) * 2.0
                    if rnd.random() < 0.6:
                        z[s["ids"][p]] += 4.0
                    lp = torch.log_softmax(z, 0)
                    v, i = torch.topk(lp, a.k)
                    alt = []
                    for x, y in zip(i.tolist(), v.tolist()):
                        alt += [x, float(f"{y:.6g}")]
                    soft.append([p, alt])
                off += n
            if soft:
                s["soft"] = soft
    with open(a.output, "w") as f:
        json.dump(b, f)


def cmd_train(a):
    model = Q.load(a.model)
    with open(a.batch) as f:
        steps = json.load(f)["steps"]
    res = Q.train(model, steps, a.lr, a.weight_decay, a.max_grad_norm, a.scheduler, a.warmup_ratio,
                  a.total_steps, eps=a.adam_eps,
                  loss_fn=make_loss(a.kd_alpha, a.kd_temperature, a.kd_loss, a.kd_jsd_beta))
    Q.save(res, a.output)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("addsoft")
    p.add_argument("--batch", required=True)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--vocab", type=int, default=300)
    p.add_argument("--skip", type=float, default=0.2)
    p.add_argument("-o", "--output", required=True)
    p = sub.add_parser("train")
    Q.add_train_args(p)
    p.add_argument("--kd-alpha", type=float, required=True)
    p.add_argument("--kd-temperature", type=float, default=1.0)
    p.add_argument("--kd-loss", choices=["forward_kl", "reverse_kl", "jsd"], default="forward_kl")
    p.add_argument("--kd-jsd-beta", type=float, default=0.5)
    a = ap.parse_args()
    {"addsoft": cmd_addsoft, "train": cmd_train}[a.cmd](a)


if __name__ == "__main__":
    main()
