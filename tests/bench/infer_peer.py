#!/usr/bin/env python3
"""The peers of tests/bench/infer.sh: prefill and greedy decode at batch 1,
timed as ds-infer times itself (one forward over the prompt; then one
forward a new token, the argmax of its logits chosen).

    infer_peer.py hf    --model DIR  --ids IDS.json --decode N --threads T [--reps R]
    infer_peer.py llama --model GGUF --ids IDS.json --decode N --threads T [--reps R]

hf: transformers' Qwen2ForCausalLM in fp32 (SDPA attention) with its
DynamicCache (a bf16 or fp16 model directory is upcast when loading).
llama: llama.cpp through llama-cpp-python, the GGUF as converted (F32 or
F16: llama.cpp computes with the weights in that type). Prints "prefill TOK/S" and "decode TOK/S", medians of R runs,
and the decoded ids of the last run (for a sanity check against ds-infer).
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def run_hf(a, ids):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(a.threads)
    m = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="sdpa")
    m.eval()
    pre, dec, out = [], [], []
    with torch.no_grad():
        for _ in range(a.reps):
            x = torch.tensor([ids])
            t0 = time.perf_counter()
            r = m(input_ids=x, use_cache=True, logits_to_keep=1)
            t1 = time.perf_counter()
            past, tok, out = r.past_key_values, int(r.logits[0, -1].argmax()), []
            t2 = time.perf_counter()
            for _ in range(a.decode):
                out.append(tok)
                r = m(input_ids=torch.tensor([[tok]]), past_key_values=past, use_cache=True)
                past, tok = r.past_key_values, int(r.logits[0, -1].argmax())
            t3 = time.perf_counter()
            pre.append(len(ids) / (t1 - t0))
            dec.append(a.decode / (t3 - t2))
    return pre, dec, out


def run_llama(a, ids):
    import numpy as np
    from llama_cpp import Llama
    llm = Llama(model_path=a.model, n_ctx=len(ids) + a.decode + 16, n_batch=max(512, len(ids)),
                n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
    V = llm.n_vocab()

    def last():  # the last token's logits (llama-cpp-python keeps scores only with logits_all)
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(V,))

    pre, dec, out = [], [], []
    for _ in range(a.reps):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        tok, out = int(np.argmax(last())), []
        t2 = time.perf_counter()
        for _ in range(a.decode):
            out.append(tok)
            llm.eval([tok])
            tok = int(np.argmax(last()))
        t3 = time.perf_counter()
        pre.append(len(ids) / (t1 - t0))
        dec.append(a.decode / (t3 - t2))
    return pre, dec, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("peer", choices=["hf", "llama"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    with open(a.ids) as f:
        ids = json.load(f)
    pre, dec, out = (run_hf if a.peer == "hf" else run_llama)(a, ids)
    print(f"prefill {statistics.median(pre):.2f}")
    print(f"decode {statistics.median(dec):.2f}")
    print("ids " + ",".join(map(str, out)))


if __name__ == "__main__":
    sys.exit(main())
