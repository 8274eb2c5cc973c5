#!/usr/bin/env python3
"""Check log-probabilities against Hugging Face transformers: each token's
logprob and its top-K alternatives must be those of log_softmax of the
model's logits (fp32, temperature 1, no penalty), computed here in float64
from one teacher-forced forward over the prompt and the completion.

    hf_logprobs.py --model DIR [--tol 1e-4] [--stop TOKEN] < records.jsonl

Each record has "prompt_ids", "completion_ids" (the stop token that ended
generation, if any, last), "logprobs" in either form ds-infer writes and
"k", the alternatives asked: the compact form of teacher.logprobs ({"k",
"tokens", "logprob", "top"}, a token a string or a list of byte values;
its own "k" stands) or OpenAI's (a list of {"token", "logprob", "bytes",
"top_logprobs"}, or {"content": that list}). The stop tokens are --stop
(the template's end of turn, default <|im_end|>) and the eos_token_id of
config.json and generation_config.json.

Checked, for every record:
- one entry a generated token, the stop token left out;
- each token's bytes are the tokenizer's bytes of its id (so the bytes
  joined are the raw completion); in OpenAI's form "token" is those bytes
  decoded, invalid UTF-8 replaced by U+FFFD;
- its logprob is the reference's within --tol;
- exactly K alternatives, most probable first; each names a token by its
  bytes (of the ids with those bytes not named already, the one whose
  reference logprob is nearest; ids without text stand for one another)
  whose reference logprob is the one given within --tol, and the j-th
  given equals the reference's j-th largest within --tol: the top K, ids
  differing only where the reference has a near-tie.
Prints one JSON line: {"records", "tokens", "max_abs_diff", "id_swaps"}
(id_swaps: alternatives at a place where the reference's own id differs,
each a near-tie); exits 1 on the first failure, saying where.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def byte_decoder():
    """GPT-2's ByteLevel alphabet, character back to byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_bytes(tok, V):
    """The bytes of every id below V (b"" for an id without text)."""
    dec = byte_decoder()
    added = {i: t.content for i, t in tok.added_tokens_decoder.items()}
    out = []
    for i, piece in enumerate(tok.convert_ids_to_tokens(list(range(V)))):
        if i in added:
            out.append(added[i].encode("utf-8"))
        elif piece is None:
            out.append(b"")
        else:
            out.append(bytes(dec[c] for c in piece))
    return out


def entries(lp):
    """[(bytes, token text or None, logprob, [(bytes, text or None, logprob)])] of either form."""
    if isinstance(lp, dict) and "tokens" in lp:
        def b(t):
            return t.encode("utf-8") if isinstance(t, str) else bytes(t)
        return [(b(t), None, p, [(b(top[j]), None, top[j + 1]) for j in range(0, len(top), 2)])
                for t, p, top in zip(lp["tokens"], lp["logprob"], lp["top"])], lp["k"]
    if isinstance(lp, dict):
        lp = lp["content"]
    return [(bytes(e["bytes"]), e["token"], e["logprob"],
             [(bytes(a["bytes"]), a["token"], a["logprob"]) for a in e["top_logprobs"]]) for e in lp], None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--stop", default="<|im_end|>", help="the template's end-of-turn token")
    a = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model.eval()
    V = model.config.vocab_size
    text = token_bytes(tok, V)
    by_bytes = {}
    for i, b in enumerate(text):
        by_bytes.setdefault(b, []).append(i)
    stops = {tok.convert_tokens_to_ids(a.stop)}
    for f in ("config.json", "generation_config.json"):
        p = os.path.join(a.model, f)
        if os.path.exists(p):
            e = json.load(open(p)).get("eos_token_id")
            stops |= set(e if isinstance(e, list) else [] if e is None else [e])

    def die(where, msg):
        print(f"hf_logprobs: {where}: {msg}", file=sys.stderr)
        sys.exit(1)

    n_rec = n_tok = swaps = 0
    worst = 0.0
    for line_no, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        prompt, done = rec["prompt_ids"], rec["completion_ids"]
        got, k = entries(rec["logprobs"])
        k = rec["k"] if k is None else k
        n = len(done) - (1 if done and done[-1] in stops else 0)
        if len(got) != n:
            die(f"line {line_no}", f"{len(got)} entries for {len(done)} generated tokens (stop token: {n < len(done)})")
        ids = torch.tensor([prompt + done[:n]])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1:].to(torch.float64)
        ref = torch.log_softmax(logits, dim=-1)
        for i, (b, t, lp, top) in enumerate(got):
            where = f"line {line_no}, token {i}"
            r = ref[i]
            if b != text[done[i]]:
                die(where, f"bytes {b!r}, but id {done[i]} is {text[done[i]]!r}")
            if t is not None and t != b.decode("utf-8", errors="replace"):
                die(where, f"token {t!r} is not its bytes {b!r} decoded")
            d = abs(lp - float(r[done[i]]))
            worst = max(worst, d)
            if d > a.tol:
                die(where, f"logprob {lp}, reference {float(r[done[i]])}")
            if len(top) != k:
                die(where, f"{len(top)} alternatives, not {k}")
            rv, ri = torch.topk(r, k)
            seen = set()
            for j, (tb, tt, tlp) in enumerate(top):
                cands = [x for x in by_bytes.get(tb, []) if x not in seen]
                if not cands:
                    die(f"{where}, alternative {j}", f"no token (not named already) has the bytes {tb!r}")
                if tt is not None and tt != tb.decode("utf-8", errors="replace"):
                    die(f"{where}, alternative {j}", f"token {tt!r} is not its bytes {tb!r} decoded")
                c = min(cands, key=lambda x: abs(float(r[x]) - tlp))
                d = max(abs(tlp - float(r[c])), abs(tlp - float(rv[j])))
                worst = max(worst, d)
                if d > a.tol:
                    die(f"{where}, alternative {j}",
                        f"{tb!r} logprob {tlp}: reference {float(r[c])} for id {c}, the reference's {j}-th is "
                        f"{float(rv[j])} (id {int(ri[j])})")
                seen.add(c)
                swaps += c != int(ri[j])
            n_tok += 1
        n_rec += 1
    if n_rec == 0:
        die("input", "no records")
    print(json.dumps({"records": n_rec, "tokens": n_tok, "max_abs_diff": worst, "id_swaps": swaps}))


if __name__ == "__main__":
    main()
