"""The PyTorch side of tests/bench/train.sh: the same training step ds-train
takes (forward, loss over the sample's trained tokens, backward, clipping,
AdamW), with Hugging Face transformers in fp32 on the CPU.

    train_torch.py --model DIR --sample SAMPLE.json --steps N --threads T

SAMPLE.json is one line of `ds-tokenize inspect --json` (input_ids, labels
with -100 where untrained). Prints one line per step: "step I SECONDS".
"""
import argparse
import time

import torch
import transformers as tr


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--sample", required=True)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--attn", default="sdpa")
    p.add_argument("--checkpointing", action="store_true", help="gradient checkpointing, as LLaMA-Factory's default")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import json
    with open(a.sample) as f:
        s = json.loads(f.readline())
    ids = torch.tensor([s["input_ids"]])
    labels = torch.tensor([s["labels"]])
    model = tr.Qwen2ForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation=a.attn)
    model.train()
    if a.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    for i in range(a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, labels=labels, use_cache=False)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        print(f"step {i + 1} {time.perf_counter() - t0:.3f} loss {out.loss.item():.4f}", flush=True)


if __name__ == "__main__":
    main()
