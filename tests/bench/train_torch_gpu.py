"""The PyTorch side of tests/bench/train_gpu.sh: the training step ds-train
takes, as Hugging Face Trainer / LLaMA-Factory run it with `bf16: true` and
no DeepSpeed on one GPU: fp32 master weights, the forward under
torch.autocast(bfloat16), backward outside it, the loss summed over every
trained token of the step's micro-batches and divided by their number
(num_items_in_batch, as transformers >= 4.46), gradient clipping to 1.0,
torch.optim.AdamW(fused=True).

    train_torch_gpu.py --model DIR --samples SAMPLES.jsonl --steps N
        [--ga A] [--attn sdpa|flash_attention_2|eager] [--checkpointing]
        [--device cuda|cpu] [--threads T]

SAMPLES.jsonl is `ds-tokenize inspect --json` output, one sample a line
(input_ids, labels with -100 where untrained, docs: tokens per document).
Step i takes A micro-batches of one sample each: samples i*A .. i*A+A-1,
round the file. A sample of several documents (ds-tokenize --pack) gets
position ids restarting at each document, from which transformers builds
the block-diagonal causal mask (sdpa) or the varlen call (flash attention
2), as for LLaMA-Factory's neat_packing. --device cpu is for testing this
script on a machine without a GPU (autocast bf16 on the CPU, AdamW unfused
when the CPU build lacks the fused kernel).

Prints "step I SECONDS loss L tokens N" a step (the GPU synchronised
before and after each), then "peak_allocated_mib X" and
"peak_reserved_mib Y" (torch.cuda.max_memory_allocated / _reserved; n/a on
the CPU).
"""
import argparse
import json
import sys
import time

import torch
import transformers as tr


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--ga", type=int, default=1, help="gradient accumulation: micro-batches of 1 sample a step")
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "flash_attention_2", "eager"])
    p.add_argument("--checkpointing", action="store_true",
                   help="gradient checkpointing (non-reentrant), as LLaMA-Factory's default")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--lr", type=float, default=1e-5)
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"train_torch_gpu.py: torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no GPU")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.manual_seed(0)

    batches = []
    with open(a.samples) as f:
        for line in f:
            s = json.loads(line)
            n = len(s["input_ids"])
            docs = s.get("docs") or [n]
            b = {"input_ids": torch.tensor([s["input_ids"]], device=dev),
                 "labels": torch.tensor([s["labels"]], device=dev)}
            if len(docs) > 1:  # packed: positions restart at each document
                b["position_ids"] = torch.cat([torch.arange(d) for d in docs]).unsqueeze(0).to(dev)
            # targets as transformers counts them: labels shifted by one
            b["targets"] = sum(1 for x in s["labels"][1:] if x != -100)
            b["tokens"] = n
            batches.append(b)
    if not batches:
        sys.exit("train_torch_gpu.py: no samples in " + a.samples)

    model = tr.Qwen2ForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation=a.attn).to(dev)
    model.config.use_cache = False
    model.train()
    if a.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [q for q in model.parameters() if q.requires_grad]
    try:
        opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0, fused=True)
        fused = True
    except (RuntimeError, ValueError):  # a CPU build without the fused kernel: testing only
        if a.device == "cuda":
            raise
        opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
        fused = False
    name = torch.cuda.get_device_name(dev) if a.device == "cuda" else "CPU"
    print(f"torch {torch.__version__} transformers {tr.__version__} attn {model.config._attn_implementation}"
          f" checkpointing {a.checkpointing} fused_adamw {fused} device {name}", flush=True)

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    for i in range(a.steps):
        step = [batches[(i * a.ga + j) % len(batches)] for j in range(a.ga)]
        n_items = sum(b["targets"] for b in step)
        tokens = sum(b["tokens"] for b in step)
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=dev)
        for b in step:
            kw = {k: b[k] for k in ("input_ids", "labels", "position_ids") if k in b}
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                out = model(**kw, use_cache=False, num_items_in_batch=n_items)
            out.loss.backward()
            loss += out.loss.detach()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync()
        dt = time.perf_counter() - t0
        print(f"step {i + 1} {dt:.4f} loss {loss.item():.4f} tokens {tokens}", flush=True)
    if a.device == "cuda":
        print(f"peak_allocated_mib {torch.cuda.max_memory_allocated(dev) / 2**20:.0f}")
        print(f"peak_reserved_mib {torch.cuda.max_memory_reserved(dev) / 2**20:.0f}")
    else:
        print("peak_allocated_mib n/a")
        print("peak_reserved_mib n/a")


if __name__ == "__main__":
    main()
