#!/usr/bin/env python3
"""Greedy generation by Hugging Face transformers, the reference ds-infer's
batch mode is compared with token for token.

    hf_generate.py --model DIR --max-new-tokens N [--template qwen] [--text]
                   [--no-thinking] [--preserve-thinking] < records.jsonl

--no-thinking and --preserve-thinking set a reasoning template's
enable_thinking false and preserve_thinking true.

Each input record has an "id" and either a "problem" (the user turn, as
ds-sharegpt trains it: the problem stripped) or "messages" (role/content,
an optional leading system message, ending with the user's turn). The
prompt is LLaMA-Factory's own rendering of it (the template's
encode_oneturn with an empty assistant reply, as its chat engines do), so
the template is checked against LLaMA-Factory and the decoding against
transformers' generate(do_sample=False). Stops: <|im_end|>, and the
eos_token_id of config.json and generation_config.json, as ds-infer(1)
documents. A record's "stop" (a list of strings) is given to generate as
its stop_strings, with the tokenizer: generation ends at the token that
completes one. Prints one line a record: {"id", "prompt_ids",
"completion_ids"} (the stop token included when generation stopped on one),
and with --text "text": the completion decoded, its stop token left out.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")


def eos_list(v):
    if v is None:
        return []
    return list(v) if isinstance(v, list) else [v]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--max-new-tokens", type=int, required=True)
    ap.add_argument("--template", default="qwen")
    ap.add_argument("--stop", default="<|im_end|>", help="the template's end-of-turn token")
    ap.add_argument("--text", action="store_true", help="add the decoded completion")
    ap.add_argument("--no-thinking", action="store_true", help="a reasoning template's enable_thinking false")
    ap.add_argument("--preserve-thinking", action="store_true", help="a reasoning template's preserve_thinking")
    a = ap.parse_args()

    # LLaMA-Factory may print on stdout: keep fd 1 for our records.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(out_fd, "w", encoding="utf-8")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(a.model)
    template = get_template_and_fix_tokenizer(tok, DataArguments(
        template=a.template, enable_thinking=not a.no_thinking, preserve_thinking=a.preserve_thinking))
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model.eval()

    stops = [tok.convert_tokens_to_ids(a.stop)]
    with open(os.path.join(a.model, "config.json")) as f:
        stops += eos_list(json.load(f).get("eos_token_id"))
    gpath = os.path.join(a.model, "generation_config.json")
    if os.path.exists(gpath):
        with open(gpath) as f:
            stops += eos_list(json.load(f).get("eos_token_id"))
    stops = list(dict.fromkeys(stops))
    gc = GenerationConfig(max_new_tokens=a.max_new_tokens, do_sample=False, num_beams=1,
                          eos_token_id=stops, pad_token_id=stops[0])

    for line in sys.stdin:
        if not line.strip():
            continue
        rec = json.loads(line)
        system = None
        if "problem" in rec:
            msgs = [{"role": "user", "content": rec["problem"].strip()}]
        else:
            msgs = list(rec["messages"])
            if msgs[0]["role"] == "system":
                system = msgs[0]["content"]
                msgs = msgs[1:]
        paired = msgs + [{"role": "assistant", "content": ""}]
        prompt, _ = template.encode_oneturn(tok, paired, system)
        ids = torch.tensor([prompt])
        extra = {"stop_strings": rec["stop"], "tokenizer": tok} if rec.get("stop") else {}
        with torch.no_grad():
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=gc, **extra)
        done = gen[0][len(prompt):].tolist()
        res = {"id": rec["id"], "prompt_ids": prompt, "completion_ids": done}
        if a.text:
            if done and done[-1] in stops:
                done = done[:-1]
            res["text"] = tok.decode(done, skip_special_tokens=False)
        print(json.dumps(res), file=out)
    out.flush()


if __name__ == "__main__":
    main()
