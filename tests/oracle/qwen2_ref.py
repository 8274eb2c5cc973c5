#!/usr/bin/env python3
"""Reference Qwen2 forward, backward and AdamW steps (transformers + torch,
CPU, fp32) that ds-train's engine is tested against.

    qwen2_ref.py init   --config CFG.json[:NAME] --seed S
                        [--dtype float32|bfloat16|float16] [--max-shard-size 100KB]
                        [--legacy-config] [--init-std auto|X] -o DIR
    qwen2_ref.py logits --model DIR --ids 1,2,3 -o OUT.safetensors
    qwen2_ref.py train  --model DIR --batch BATCH.json -o OUT.safetensors
                        [--lr 1e-3] [--weight-decay 0.1] [--max-grad-norm 1.0]
                        [--scheduler cosine|linear|constant] [--warmup-ratio 0.1]
                        [--total-steps N]
    qwen2_ref.py selftest

init: Qwen2ForCausalLM(Qwen2Config(**cfg)) under torch.manual_seed(S), every
  parameter re-randomised (see randomise()), saved with save_pretrained in
  the dtype asked. CFG.json is a config dict, or a dict of them (then :NAME
  picks one, e.g. qwen2_configs.json:tied-mha). --legacy-config rewrites
  config.json the way real Qwen2 / R1-Distill checkpoints (transformers 4.x)
  spell it: top-level rope_theta and torch_dtype, sliding_window 4096 with
  use_sliding_window false, no rope_parameters / layer_types / dtype.
logits: "logits" (T, V) fp32 of the ids as one sequence, positions 0..T-1.
train: see train() for the exact semantics; writes loss, lr, grad_norm, ntok
  (S,), logits.0, grad.<name> (first step, before clipping) and
  param.<name> (after the last step), all fp32.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
HERE = os.path.dirname(os.path.abspath(__file__))


def tf():
    import transformers
    transformers.logging.set_verbosity_error()
    try:
        from transformers.utils import logging as hl
        hl.disable_progress_bar()
    except Exception:
        pass
    return transformers


# ---------------------------------------------------------------- init

def read_config(spec):
    """CFG.json, or FILE.json:NAME picking one config of a dict of them."""
    path, name = spec, None
    if not os.path.exists(spec) and ":" in spec:
        path, name = spec.rsplit(":", 1)
    with open(path) as f:
        cfg = json.load(f)
    if name is not None:
        cfg = cfg[name]
    elif "vocab_size" not in cfg:
        raise SystemExit(f"{path}: a dict of configs; pick one with {path}:NAME "
                         f"({', '.join(cfg)})")
    return dict(cfg)


def randomise(model, std="auto"):
    """Re-randomise every parameter (tied ones once), in the order of
    named_parameters(): matrices normal with std 1/sqrt(fan_in) (or the
    fixed std given), biases normal std 0.1, RMSNorm weights 1 + normal std
    0.1. std 1/sqrt(fan_in) rather than 0.02 keeps attention and softmax far
    from uniform in these tiny models, so the tests see RoPE, masking and
    the softmax Jacobian."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
            elif "norm" in name:
                p.normal_(0.0, 0.1).add_(1.0)
            else:
                assert p.dim() == 2, name
                s = 1.0 / math.sqrt(p.shape[1]) if std == "auto" else float(std)
                p.normal_(0.0, s)


def build(cfg, seed, std="auto"):
    t = tf()
    torch.manual_seed(seed)
    config = t.Qwen2Config(**cfg)
    model = t.Qwen2ForCausalLM(config)
    model.set_attn_implementation("eager")  # a fresh model defaults to sdpa
    randomise(model, std)
    return model


def legacy_config(path):
    """Rewrite DIR/config.json in the transformers 4.x spelling."""
    with open(path) as f:
        c = json.load(f)
    rope = c.pop("rope_parameters", None) or {}
    assert rope.get("rope_type", "default") == "default", rope
    out = {}
    for k, v in c.items():
        if k == "dtype":
            out["torch_dtype"] = v
        elif k == "layer_types":
            continue
        elif k == "sliding_window" and v is None:
            out[k] = 4096
        else:
            out[k] = v
        if k == "rms_norm_eps":
            out["rope_theta"] = rope["rope_theta"]
    out.setdefault("rope_theta", rope["rope_theta"])
    out["use_sliding_window"] = False
    with open(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
        f.write("\n")


def cmd_init(a):
    model = build(read_config(a.config), a.seed, a.init_std)
    dtype = DTYPES[a.dtype]
    model.to(dtype)
    kw = {"safe_serialization": True}
    if a.max_shard_size:
        kw["max_shard_size"] = a.max_shard_size
    model.save_pretrained(a.output, **kw)
    cpath = os.path.join(a.output, "config.json")
    with open(cpath) as f:
        saved = json.load(f)
    got = saved.get("dtype", saved.get("torch_dtype"))
    assert got == a.dtype, f"config.json records dtype {got!r}, wanted {a.dtype}"
    if a.legacy_config:
        legacy_config(cpath)
    return model


# ---------------------------------------------------------------- load / logits

def load(model_dir):
    t = tf()
    model = t.Qwen2ForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    assert next(model.parameters()).dtype == torch.float32
    return model


def forward(model, ids):
    """Logits (T, V) of ids as one sequence at positions 0..T-1."""
    x = torch.tensor([ids], dtype=torch.long)
    return model(input_ids=x, use_cache=False).logits[0]


def save(tensors, path):
    from safetensors.torch import save_file
    save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, path)


def parse_ids(s):
    return [int(x) for x in s.replace(" ", "").split(",") if x]


def cmd_logits(a):
    model = load(a.model)
    model.eval()
    ids = parse_ids(a.ids)
    with torch.no_grad():
        logits = forward(model, ids)
    save({"logits": logits}, a.output)
    return logits


# ---------------------------------------------------------------- train

def check_sample(s, vocab):
    ids = s["ids"]
    mask = s.get("mask", [1] * len(ids))
    docs = s.get("doc_len", [len(ids)])
    assert len(mask) == len(ids), "mask and ids differ in length"
    assert sum(docs) == len(ids) and all(n > 0 for n in docs), "bad doc_len"
    assert all(0 <= i < vocab for i in ids), "token id out of range"
    assert all(m in (0, 1) for m in mask), "mask must be 0/1"
    return ids, mask, docs


def step_loss(model, samples, vocab, keep_logits=False):
    """Summed cross-entropy of a step's samples, counted positions, and (if
    asked) the first sample's logits. Each document runs alone at positions
    0..L-1; position t predicts token t+1 of the same document and counts
    when mask[t+1] == 1."""
    total = None
    ntok = 0
    first_logits = None
    for si, s in enumerate(samples):
        ids, mask, docs = check_sample(s, vocab)
        parts = []
        off = 0
        for n in docs:
            logits = forward(model, ids[off:off + n])
            if keep_logits and si == 0:
                parts.append(logits.detach().clone())
            tgt = torch.tensor(ids[off + 1:off + n], dtype=torch.long)
            w = torch.tensor(mask[off + 1:off + n], dtype=torch.bool)
            k = int(w.sum())
            if k:
                labels = torch.where(w, tgt, torch.full_like(tgt, -100))
                ce = torch.nn.functional.cross_entropy(
                    logits[:-1].float(), labels, ignore_index=-100, reduction="sum")
                total = ce if total is None else total + ce
                ntok += k
            off += n
        if keep_logits and si == 0:
            first_logits = torch.cat(parts, 0)
    return total, ntok, first_logits


def param_groups(model, weight_decay):
    """Trainer.create_optimizer's two groups: decay everything except biases
    and norm weights."""
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if n.endswith("bias") or "norm" in n else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_scheduler(opt, name, warmup_ratio, total_steps):
    t = tf()
    warmup = math.ceil(warmup_ratio * total_steps)
    if name == "constant":
        name = "constant_with_warmup" if warmup > 0 else "constant"
    if name == "constant":
        return t.get_scheduler(name, opt)
    return t.get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total_steps)


def train(model, steps, lr=1e-3, weight_decay=0.1, max_grad_norm=1.0,
          scheduler="cosine", warmup_ratio=0.1, total_steps=None, hook=None, eps=1e-8,
          loss_fn=None):
    """Run the steps; returns the dict of output tensors.

    Per step: zero_grad; loss = (sum of CE over counted positions of all
    samples) / (counted positions of the step); one backward (a step with
    no counted position: loss 0 and every gradient set to zeros, so AdamW
    still steps); norm = clip_grad_norm_(model.parameters(), max_grad_norm)
    (the norm before clipping; max_grad_norm <= 0: no clipping, norm still
    recorded); lr = scheduler.get_last_lr()[0]; optimizer.step();
    scheduler.step(). hook(step, model, opt) runs after each step (selftest).
    loss_fn replaces step_loss (kd_ref.py: the distillation loss); when it
    returns a 4th value, a dict of per-step numbers, they are recorded too.
    """
    loss_fn = loss_fn or step_loss
    cfg = model.config
    assert float(cfg.attention_dropout) == 0.0, "attention_dropout must be 0"
    model.train()
    params = list(model.parameters())  # dedups tied weights
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999),
                            eps=eps, weight_decay=weight_decay, foreach=False, fused=False)
    total_steps = total_steps or len(steps)
    sched = make_scheduler(opt, scheduler, warmup_ratio, total_steps)
    out = {k: [] for k in ("loss", "lr", "grad_norm", "ntok")}
    res = {}
    for si, samples in enumerate(steps):
        opt.zero_grad(set_to_none=True)
        got = loss_fn(model, samples, cfg.vocab_size, keep_logits=si == 0)
        total, ntok, logits0 = got[:3]
        for k, v in (got[3] if len(got) > 3 else {}).items():
            out.setdefault(k, []).append(v)
        if ntok:
            loss = total / ntok
            loss.backward()
            lv = loss.item()
        else:
            for p in params:
                p.grad = torch.zeros_like(p)
            lv = 0.0
        for p in params:  # a parameter the loss does not reach still gets a zero grad
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if si == 0:
            res["logits.0"] = logits0
            for n, p in model.named_parameters():
                res["grad." + n] = p.grad.detach().clone()
        norm = torch.nn.utils.clip_grad_norm_(
            params, max_grad_norm if max_grad_norm > 0 else math.inf)
        out["loss"].append(lv)
        out["ntok"].append(float(ntok))
        out["grad_norm"].append(float(norm))
        out["lr"].append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
        if hook:
            hook(si, model, opt)
    for k, v in out.items():
        res[k] = torch.tensor(v, dtype=torch.float32)
    for n, p in model.named_parameters():
        res["param." + n] = p.detach().clone()
    return res


def cmd_train(a):
    model = load(a.model)
    with open(a.batch) as f:
        steps = json.load(f)["steps"]
    assert steps, "no steps"
    res = train(model, steps, a.lr, a.weight_decay, a.max_grad_norm, a.scheduler,
                a.warmup_ratio, a.total_steps, eps=a.adam_eps)
    save(res, a.output)
    return res


# ---------------------------------------------------------------- selftest

def close(a, b, tol, what):
    a, b = a.detach().double(), b.detach().double()
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    err = (a - b).abs().max().item() / max(b.abs().max().item(), 1e-12)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:g}"
    return err


def cmd_selftest(a):
    t0 = time.time()
    t = tf()
    import compare_st
    import qwen2_batch
    with open(os.path.join(HERE, "qwen2_configs.json")) as f:
        configs = json.load(f)
    F = torch.nn.functional
    log = lambda m: print(f"selftest: {m} [{time.time() - t0:.1f}s]", flush=True)
    tmp = tempfile.mkdtemp(prefix="qwen2_ref.")

    # 1. init: every parameter re-randomised; save/load round trip, sharded,
    #    in each dtype; legacy config loads to the same model.
    for name, cfg in configs.items():
        m = build(cfg, 7)
        for n, p in m.named_parameters():
            if n.endswith("bias"):
                assert p.abs().min() > 0 and 0.05 < p.std() < 0.2, n
            elif "norm" in n:
                assert (p != 1).all() and 0.05 < p.std() < 0.2, n
            else:
                assert abs(p.std().item() * math.sqrt(p.shape[1]) - 1) < 0.2, n
        tied = m.lm_head.weight is m.model.embed_tokens.weight
        assert tied == cfg["tie_word_embeddings"], name
        assert m.config.rope_parameters["rope_theta"] == cfg["rope_theta"], name
    cfgp = os.path.join(HERE, "qwen2_configs.json")
    ids = [5, 17, 299, 0, 42, 42, 7, 120, 64, 3, 250, 11]
    for name, dt, shard, legacy in (("tied-gqa2", "bfloat16", "40KB", False),
                                    ("untied-gqa2", "float32", None, True),
                                    ("untied-mha", "float16", None, False)):
        d = os.path.join(tmp, f"{name}-{dt}")
        ns = argparse.Namespace(config=f"{cfgp}:{name}", seed=3, dtype=dt, output=d,
                                max_shard_size=shard, legacy_config=legacy, init_std="auto")
        m = cmd_init(ns)
        files = sorted(os.listdir(d))
        assert ("model.safetensors.index.json" in files) == bool(shard), files
        c = json.load(open(os.path.join(d, "config.json")))
        if legacy:
            assert c["rope_theta"] == configs[name]["rope_theta"] and "rope_parameters" not in c
            assert c["torch_dtype"] == dt and "dtype" not in c
        else:
            assert c["dtype"] == dt
        r = load(d)
        assert r.config.rope_parameters["rope_theta"] == configs[name]["rope_theta"]
        assert r.config.tie_word_embeddings == configs[name]["tie_word_embeddings"]
        sd = dict(m.named_parameters())
        for n, p in r.named_parameters():
            assert torch.equal(p, sd[n].float()), f"{name}: {n} not round-tripped"
        assert {n for n, _ in r.named_parameters()} == set(sd)
        ns = argparse.Namespace(model=d, ids=",".join(map(str, ids)),
                                output=os.path.join(d, "logits.safetensors"))
        lg = cmd_logits(ns)
        # model.to(dtype) also casts the RoPE inv_freq buffer (not saved), so
        # compare against a fresh fp32 build holding the rounded weights.
        m32 = build(configs[name], 3).eval()
        with torch.no_grad():
            for p in m32.parameters():
                p.copy_(p.to(DTYPES[dt]).float())
            close(lg, forward(m32, ids), 1e-6, f"{name} logits after reload")
    log("init / save / load / logits round trips ok (sharded, bf16/fp16/fp32, legacy config)")

    # 2. forward from first principles for one config: RoPE, GQA, RMSNorm,
    #    biases, SwiGLU, tying — written out by hand.
    for name in ("tied-gqa2", "untied-mha"):
        cfg = configs[name]
        m = build(cfg, 11).eval()
        with torch.no_grad():
            close(forward(m, ids), manual_forward(m, ids), 1e-5, f"{name} manual forward")
    log("hand-written forward matches the HF model")

    # 3. loss equals the model's own labels= loss on an unpacked, fully
    #    masked sample; packed documents equal HF's packed path (position_ids
    #    restarts) and an explicit block-diagonal 4D mask, for loss, logits
    #    and gradients.
    m = build(configs["untied-gqa2"], 5)
    m.train()
    seq = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]
    total, ntok, _ = step_loss(m, [{"ids": seq, "mask": [1] * len(seq), "doc_len": [len(seq)]}],
                               300)
    x = torch.tensor([seq])
    hf = m(input_ids=x, labels=x, use_cache=False).loss
    assert ntok == len(seq) - 1
    close(total / ntok, hf, 1e-6, "loss vs labels= loss")

    batch = qwen2_batch.make(2, 300, 3, 96, False)
    sample = batch["steps"][0][0]
    ids_p, mask_p, docs = sample["ids"], sample["mask"], sample["doc_len"]
    T = len(ids_p)
    pos, labels, seg = [], [], []
    for d, n in enumerate(docs):
        pos += list(range(n))
        seg += [d] * n
    off = 0
    for n in docs:  # labels in HF convention: labels[t] is the target of t-1
        for k in range(n):
            labels.append(ids_p[off + k] if k > 0 and mask_p[off + k] else -100)
        off += n
    m.zero_grad()
    total, ntok, lg_doc = step_loss(m, [sample], 300, keep_logits=True)
    (total / ntok).backward()
    g_doc = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    x = torch.tensor([ids_p])
    pid = torch.tensor([pos])
    lab = torch.tensor([labels])
    out = m(input_ids=x, position_ids=pid, labels=lab, use_cache=False,
            num_items_in_batch=torch.tensor(ntok))
    assert ntok == sum(1 for v in labels if v != -100)
    close(out.loss, total / ntok, 1e-6, "packed loss vs HF packed (position_ids) loss")
    close(out.logits[0], lg_doc, 1e-5, "per-document logits vs HF packed logits")
    out.loss.backward()
    for n, p in m.named_parameters():
        close(p.grad, g_doc[n], 1e-5, f"grad {n}: per-document vs HF packed")
    s = torch.tensor(seg)
    allowed = (s[:, None] == s[None, :]) & torch.tril(torch.ones(T, T, dtype=torch.bool))
    mask4 = torch.zeros(1, 1, T, T).masked_fill(~allowed, torch.finfo(torch.float32).min)
    with torch.no_grad():
        lg4 = m(input_ids=x, position_ids=pid, attention_mask=mask4, use_cache=False).logits[0]
    close(lg4, lg_doc, 1e-5, "per-document logits vs 4D block-diagonal mask")
    with torch.no_grad():  # not vacuous: without the restarts the logits differ
        lg1 = forward(m, ids_p)
    assert (lg1 - lg_doc).abs().max() > 1e-2 * lg_doc.abs().max()
    log("loss = labels= loss; per-document = HF packed = 4D block mask (loss, logits, grads)")

    # 4. tied embeddings: the gradient of the shared matrix is the sum of the
    #    embedding and lm_head gradients of an untied copy.
    cfg = dict(configs["tied-gqa2"])
    mt = build(cfg, 9)
    cfg["tie_word_embeddings"] = False
    mu = t.Qwen2ForCausalLM(t.Qwen2Config(**cfg))
    mu.set_attn_implementation("eager")
    mu.load_state_dict({**mt.state_dict(), "lm_head.weight": mt.model.embed_tokens.weight.clone()})
    step = batch["steps"][0]
    for mm in (mt, mu):
        mm.train()
        tl, nt, _ = step_loss(mm, step, 300)
        (tl / nt).backward()
    close(mt.model.embed_tokens.weight.grad,
          mu.model.embed_tokens.weight.grad + mu.lm_head.weight.grad, 1e-5, "tied grad")
    assert len(list(mt.parameters())) == len(list(mu.parameters())) - 1
    log("tied gradient = embedding + lm_head gradient")

    # 5. gradient accumulation: the step loss is sum over samples / all
    #    counted positions; a sample without targets adds nothing.
    m = build(configs["tied-mha"], 4)
    m.train()
    st = batch["steps"][1]
    tl, nt, _ = step_loss(m, st, 300)
    parts = [step_loss(m, [s], 300) for s in st]
    assert parts[1][1] == 0 and parts[1][0] is None, "sample 1 of step 1 must have no target"
    assert nt == sum(p[1] for p in parts)
    close(tl / nt, sum(p[0] for p in parts if p[0] is not None) / nt, 1e-6, "accumulation")
    log("accumulated step loss normalised by the step's counted positions")

    # 6. the full train loop: parameter groups are Trainer's; AdamW, clipping
    #    and the schedules equal hand-written updates; a step with no target
    #    still moves the parameters (decay, moments).
    from transformers.trainer_pt_utils import get_parameter_names
    forbidden = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    m = build(configs["untied-gqa2"], 8)
    trainer_decay = set(get_parameter_names(m, [torch.nn.LayerNorm], forbidden))
    ours = {n for n, _ in m.named_parameters() if not (n.endswith("bias") or "norm" in n)}
    assert trainer_decay == ours, trainer_decay ^ ours
    steps = qwen2_batch.make(6, 300, 4, 64, True)["steps"]
    lr, wd, clip = 3e-3, 0.1, 0.5
    watch = ["model.layers.1.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.bias",
             "model.norm.weight", "lm_head.weight"]
    state = {n: dict(p=dict(m.named_parameters())[n].detach().clone(),
                     m=0, v=0) for n in watch}
    seen = []

    def hook(si, model, opt):
        seen.append(si)
        g = opt.param_groups
        lr_now = seen_lr[si]
        ps = dict(model.named_parameters())
        coef = min(1.0, clip / (seen_norm[si] + 1e-6))
        for n in watch:
            s = state[n]
            grad = seen_grad[si][n] * coef
            decay = 0.0 if (n.endswith("bias") or "norm" in n) else wd
            k = si + 1
            p = s["p"] * (1 - lr_now * decay)
            s["m"] = 0.9 * s["m"] + 0.1 * grad
            s["v"] = 0.999 * s["v"] + 0.001 * grad * grad
            mh = s["m"] / (1 - 0.9 ** k)
            vh = s["v"] / (1 - 0.999 ** k)
            s["p"] = p - lr_now * mh / (vh.sqrt() + 1e-8)
            close(ps[n], s["p"], 2e-6, f"AdamW step {si} {n}")
        assert len(g) == 2 and g[1]["weight_decay"] == 0.0

    seen_lr, seen_norm, seen_grad = [], [], []
    # capture the pre-clip gradients and lr of each step by wrapping clip
    real_clip = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *x, **kw):
        params = list(params)
        seen_grad.append({n: p.grad.detach().clone() for n, p in m.named_parameters()})
        norm = real_clip(params, max_norm, *x, **kw)
        seen_norm.append(float(norm))
        return norm
    torch.nn.utils.clip_grad_norm_ = spy
    orig_step = torch.optim.AdamW.step

    def step_spy(self, *x, **kw):
        seen_lr.append(self.param_groups[0]["lr"])
        return orig_step(self, *x, **kw)
    torch.optim.AdamW.step = step_spy
    try:
        res = train(m, steps, lr=lr, weight_decay=wd, max_grad_norm=clip,
                    scheduler="cosine", warmup_ratio=0.25, total_steps=6, hook=hook)
    finally:
        torch.nn.utils.clip_grad_norm_ = real_clip
        torch.optim.AdamW.step = orig_step
    assert seen == list(range(len(steps)))
    for si in range(len(steps)):
        gn = math.sqrt(sum(float(g.double().pow(2).sum()) for g in seen_grad[si].values()))
        assert abs(gn - seen_norm[si]) <= 1e-5 * max(gn, 1e-12), "grad norm"
        assert abs(res["grad_norm"][si].item() - gn) <= 1e-5 * max(gn, 1e-12)
    last = len(steps) - 1
    assert res["ntok"][last] == 0 and res["loss"][last] == 0 and res["grad_norm"][last] == 0
    close(res["lr"], torch.tensor(seen_lr), 1e-6, "recorded lr vs lr AdamW used")
    # lr schedule by formula: warmup ceil(0.25*6) = 2, cosine over 6 steps
    W, N = 2, 6
    for k in range(len(steps)):
        want = lr * (k / W if k < W else
                     0.5 * (1 + math.cos(math.pi * (k - W) / (N - W))))
        assert abs(res["lr"][k].item() - want) <= 1e-6 * lr, ("cosine lr", k)
    for name, f in (("linear", lambda k, W, N: k / max(1, W) if k < W else max(0.0, (N - k) / max(1, N - W))),
                    ("constant", lambda k, W, N: k / max(1, W) if k < W else 1.0)):
        for ratio in (0.0, 0.3):
            opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
            sc = make_scheduler(opt, name, ratio, 7)
            W = math.ceil(ratio * 7)
            for k in range(7):
                assert abs(sc.get_last_lr()[0] - lr * f(k, W, 7)) <= 1e-9, (name, ratio, k)
                opt.step()
                sc.step()
    log("param groups = Trainer's; AdamW/clip/lr schedules = hand-written; empty step ok")

    # 7. the train subcommand end to end, and compare_st on its output.
    d = os.path.join(tmp, "tied-gqa2-bfloat16")
    bpath = os.path.join(tmp, "batch.json")
    with open(bpath, "w") as f:
        json.dump(qwen2_batch.make(1, 300, 3, 96, True), f)
    o1, o2 = os.path.join(tmp, "t1.safetensors"), os.path.join(tmp, "t2.safetensors")
    ns = argparse.Namespace(model=d, batch=bpath, output=o1, lr=1e-3, weight_decay=0.1,
                            max_grad_norm=1.0, scheduler="cosine", warmup_ratio=0.1,
                            total_steps=None)
    res = cmd_train(ns)
    names = set(res)
    want = {"loss", "lr", "grad_norm", "ntok", "logits.0"}
    want |= {p + n for n, _ in load(d).named_parameters() for p in ("grad.", "param.")}
    assert names == want, names ^ want
    assert "grad.lm_head.weight" not in names
    assert res["loss"].shape == (4,) and res["logits.0"].shape[1] == 300
    b0 = json.load(open(bpath))["steps"][0][0]
    assert res["logits.0"].shape[0] == len(b0["ids"])
    import io
    sink = io.StringIO()
    assert compare_st.compare(o1, o1, out=sink) == 0
    res["param.model.norm.weight"][3] += 1e-3
    res["loss"][1] *= 1 + 1e-3
    save(res, o2)
    sink = io.StringIO()
    assert compare_st.compare(o2, o1, 1e-4, out=sink) == 1
    rep = sink.getvalue()
    assert "FAIL" in rep and "param.model.norm.weight [64]" in rep and "at [3]" in rep, rep
    assert compare_st.compare(o2, o1, 1e-4, ignore=["param.", "loss"], out=io.StringIO()) == 0
    assert compare_st.compare(o2, o1, 1e-4, only=["grad."], out=io.StringIO()) == 0
    log("train subcommand outputs and compare_st ok")
    import shutil
    shutil.rmtree(tmp)
    print(f"selftest: all ok ({time.time() - t0:.1f}s)")


def manual_forward(model, ids):
    """The Qwen2 forward written out with plain tensor ops (no HF modules)."""
    c = model.config
    P = dict(model.named_parameters())
    H, nh, nkv = c.hidden_size, c.num_attention_heads, c.num_key_value_heads
    hd = H // nh
    T = len(ids)
    theta = c.rope_parameters["rope_theta"]
    eps = c.rms_norm_eps

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]   # (T, hd/2)
    cos, sin = ang.cos(), ang.sin()

    def rope(x):  # (heads, T, hd): pairs (i, i + hd/2)
        a, b = x[..., :hd // 2], x[..., hd // 2:]
        return torch.cat((a * cos - b * sin, b * cos + a * sin), -1)

    x = P["model.embed_tokens.weight"][torch.tensor(ids)]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(c.num_hidden_layers):
        p = lambda n: P[f"model.layers.{i}.{n}"]
        h = rms(x, p("input_layernorm.weight"))
        q = (h @ p("self_attn.q_proj.weight").T + p("self_attn.q_proj.bias")).view(T, nh, hd)
        k = (h @ p("self_attn.k_proj.weight").T + p("self_attn.k_proj.bias")).view(T, nkv, hd)
        v = (h @ p("self_attn.v_proj.weight").T + p("self_attn.v_proj.bias")).view(T, nkv, hd)
        q, k, v = rope(q.transpose(0, 1)), rope(k.transpose(0, 1)), v.transpose(0, 1)
        g = nh // nkv
        k, v = k.repeat_interleave(g, 0), v.repeat_interleave(g, 0)  # head j uses kv j // g
        s = (q @ k.transpose(1, 2)) / math.sqrt(hd)
        s = s.masked_fill(~causal, float("-inf")).softmax(-1)
        o = (s @ v).transpose(0, 1).reshape(T, H)
        x = x + o @ p("self_attn.o_proj.weight").T
        h = rms(x, p("post_attention_layernorm.weight"))
        a = torch.nn.functional.silu(h @ p("mlp.gate_proj.weight").T) * (h @ p("mlp.up_proj.weight").T)
        x = x + a @ p("mlp.down_proj.weight").T
    x = rms(x, P["model.norm.weight"])
    w = P["model.embed_tokens.weight"] if c.tie_word_embeddings else P["lm_head.weight"]
    return x @ w.T


# ---------------------------------------------------------------- main

def add_train_args(p):
    """train's options (kd_ref.py's train takes them too)."""
    p.add_argument("--model", required=True)
    p.add_argument("--batch", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--adam-eps", type=float, default=1e-8)
    p.add_argument("--scheduler", choices=["cosine", "linear", "constant"], default="cosine")
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--total-steps", type=int, default=None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init", help="make a randomised tiny model directory")
    p.add_argument("--config", required=True, help="CFG.json or FILE.json:NAME")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--max-shard-size", default=None,
                   help="e.g. 100KB: force sharded safetensors with an index")
    p.add_argument("--legacy-config", action="store_true",
                   help="write config.json the transformers 4.x way (rope_theta, torch_dtype)")
    p.add_argument("--init-std", default="auto",
                   help="std of weight matrices: auto = 1/sqrt(fan_in), or a number")
    p.add_argument("-o", "--output", required=True)
    p = sub.add_parser("logits", help="logits of one sequence")
    p.add_argument("--model", required=True)
    p.add_argument("--ids", required=True, help="comma-separated token ids")
    p.add_argument("-o", "--output", required=True)
    add_train_args(sub.add_parser("train", help="reference training steps"))
    sub.add_parser("selftest", help="check this oracle against transformers and by hand")
    a = ap.parse_args(argv)
    sys.path.insert(0, HERE)
    {"init": cmd_init, "logits": cmd_logits, "train": cmd_train,
     "selftest": cmd_selftest}[a.cmd](a)


if __name__ == "__main__":
    main()
