#!/usr/bin/env python3
"""A Qwen2 model that says one thing: a fixture for the parts of ds-infer a
random model never reaches (a chain of thought to split off, a stop token,
an answer ds-judge can grade).

    script_model.py --tokenizer DIR --config tiny-qwen.json --text TEXT
                    [--after TOKEN] [--stop TOKEN] -o DIR

The reply is TEXT's tokens then the stop token (default <|im_end|>),
whatever the prompt, which ends with the token given as --after (default
"\\n", the end of Qwen's "assistant\\n"; R1-Distill's prompt ends with
<｜Assistant｜>). Attention and MLP outputs are zeroed (o_proj,
down_proj), so the last hidden state is the current token's embedding:
the chain's k-th token embeds as the k-th unit vector, and the LM head's
row for the token after it points the same way. Every token of the chain
must therefore be distinct. Written by transformers' save_pretrained, with
the tokenizer files beside it.
"""
import argparse
import json
import os
import shutil

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--after", default="\n", help="the prompt's last token")
    ap.add_argument("--stop", default="<|im_end|>", help="the token that ends the reply")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()

    import torch
    from tokenizers import Tokenizer
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer.from_file(os.path.join(a.tokenizer, "tokenizer.json"))
    chain = [tok.encode(a.after, add_special_tokens=False).ids[-1]]
    chain += tok.encode(a.text, add_special_tokens=False).ids
    chain.append(tok.token_to_id(a.stop))
    assert len(set(chain)) == len(chain), f"tokens repeat in the chain: {chain}"
    with open(a.config) as f:
        cfg = json.load(f)
    cfg["tie_word_embeddings"] = False
    assert len(chain) <= cfg["hidden_size"], "the chain is longer than hidden_size"
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**cfg))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if "norm" in name else 0.0)
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight
        for k, t in enumerate(chain[:-1]):
            emb[t, k] = 1.0
            head[chain[k + 1], k] = 10.0
    model.save_pretrained(a.output, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(a.tokenizer, f), a.output)


if __name__ == "__main__":
    main()
