#!/usr/bin/env python3
"""Compare ds-train's DPO log with LLaMA-Factory's, step by step.

    dpo_compare.py DS_OUT/trainer_log.jsonl LF_OUT/trainer_state.json [--rtol 1e-5]

Every step LF logged must be in ds-train's log. Per step:
  loss, grad_norm, logps/chosen, logps/rejected, sft_loss, odds_ratio_loss
      relative error <= rtol;
  rewards/chosen, rewards/rejected, rewards/margins
      absolute error <= rtol * beta * max(|logps/chosen|, |logps/rejected|):
      a reward is beta times a difference of two log-probabilities of that
      size, each a float32 sum on LF's side, so its own rounding is of that
      order, not of the reward's;
  rewards/accuracies (and ds's "accuracy", LF's trainer_log name) equal.
beta is read from ds-train's ds_train_args.yaml beside the log. Prints the
worst error of each metric; exits 1 when one is over its bound.
"""
import argparse
import json
import os
import sys

REL = ["loss", "grad_norm", "logps/chosen", "logps/rejected", "sft_loss", "odds_ratio_loss"]
REWARDS = ["rewards/chosen", "rewards/rejected", "rewards/margins"]


def beta_of(run_dir):
    with open(os.path.join(run_dir, "ds_train_args.yaml")) as f:
        for line in f:
            if line.startswith("pref_beta:"):
                return float(line.split(":", 1)[1])
    sys.exit("dpo_compare: no pref_beta in ds_train_args.yaml")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ds_log")
    ap.add_argument("lf_state")
    ap.add_argument("--rtol", type=float, default=1e-5)
    a = ap.parse_args()
    beta = beta_of(os.path.dirname(a.ds_log))
    with open(a.ds_log) as f:
        ds = {e["current_steps"]: e for e in map(json.loads, f)}
    with open(a.lf_state) as f:
        lf = [e for e in json.load(f)["log_history"] if "loss" in e]
    if not lf:
        sys.exit("dpo_compare: LF logged no steps")
    worst, bad = {}, []
    for want in lf:
        step = want["step"]
        got = ds.get(step)
        if got is None:
            sys.exit(f"dpo_compare: step {step} is not in {a.ds_log}")
        scale = beta * max(abs(want["logps/chosen"]), abs(want["logps/rejected"]))
        for k in REL + REWARDS + ["rewards/accuracies"]:
            if k not in want:
                continue
            if k not in got:
                bad.append(f"step {step}: {k} missing")
                continue
            if k == "rewards/accuracies":
                err, bound = abs(got[k] - want[k]), 0.0
                if got.get("accuracy") != got[k]:
                    bad.append(f"step {step}: accuracy {got.get('accuracy')} is not rewards/accuracies {got[k]}")
            elif k in REWARDS:
                err, bound = abs(got[k] - want[k]) / scale, a.rtol
            else:
                err, bound = abs(got[k] - want[k]) / max(abs(want[k]), 1e-12), a.rtol
            worst[k] = max(worst.get(k, 0.0), err)
            if err > bound:
                bad.append(f"step {step}: {k} {got[k]!r}, LF {want[k]!r} (error {err:.3g} > {bound:g})")
    print("dpo_compare: %d steps; worst: %s" % (len(lf), ", ".join(f"{k} {v:.2g}" for k, v in worst.items())))
    for b in bad:
        print("  FAIL " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
