#!/usr/bin/env python3
"""Deterministic ShareGPT records for the shard tests: one to four turns,
with and without a system prompt (absent, empty, set), Latin, CJK, emoji
and ZWJ sequences, LaTeX, code, <think> blocks, and some long enough to be
truncated at small cutoffs.

    sharegpt_cases.py N [--seed S] [--layout conversations|messages] [--reasoning]

--reasoning shapes the assistant turns as a reasoning template sees them
(LLaMA-Factory's ReasoningTemplate, thought words "<think>\n" and
"\n</think>\n\n"): a thought then an answer, as R1 writes; no tags at all
(the empty thought is added); two thoughts; tags without the newlines, or
only one of them (kept, but they count as a thought); a thought and nothing
else; leading newlines (stripped with a dropped thought); and R1-Distill's
own marker tokens inside the text.
"""
import argparse
import json
import random

PIECES = [
    "Find $x$ if $2x+1=7$.", "Subtract 1: $2x=6$, so $x=3$.", "\\boxed{42}",
    "你好，世界。这是一个测试。", "数学题：求 $\\int_0^1 x^2\\,dx$。", "こんにちは、元気ですか？",
    "🙂👍🏽 👩‍👩‍👧‍👦 family", "Ünïcödé café naïve façade", "def f(x):\n    return x * 2\n",
    "  leading and trailing spaces  ", "line one\nline two\r\nline three\n\n\n",
    "Привет, мир!", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "1234567890 3.14159",
    "<think>\nLet me reason step by step.\n</think>\n\nThe answer is 7.",
    "if (a < b && c > d) { return a[i] + b[j]; }", "tab\tseparated\tvalues",
    "The quick brown fox jumps over the lazy dog.", "e^{i\\pi} + 1 = 0",
]


def text(rng, lo, hi):
    return " ".join(rng.choice(PIECES) for _ in range(rng.randint(lo, hi)))


R1_MARKERS = ["<\uff5cUser\uff5c>", "<\uff5cAssistant\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>",
              "<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<|EOT|>", "<|im_start|>"]


def reasoning_text(rng, lo, hi):
    t = lambda: text(rng, lo, hi)
    thought = lambda: "<think>\n" + t() + "\n</think>\n\n"
    shape = rng.choice(["r1", "r1", "r1", "plain", "plain", "two", "mid", "bare",
                        "close", "open", "only", "newlines", "markers"])
    if shape == "r1":
        return thought() + t()
    if shape == "plain":
        return t()
    if shape == "two":
        return thought() + t() + "\n" + thought() + t()
    if shape == "mid":
        return t() + "\n" + thought() + t()
    if shape == "bare":  # tags, but not LF's thought words: never removed
        return "<think>" + t() + "</think>" + t()
    if shape == "close":
        return t() + "\n</think>\n\n" + t()
    if shape == "open":
        return "<think>\n" + t()
    if shape == "only":
        return thought()
    if shape == "newlines":
        return "\n\n" + rng.choice([thought(), ""]) + "\n" + t()
    return t() + " " + rng.choice(R1_MARKERS) + " " + t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layout", default="conversations")
    ap.add_argument("--reasoning", action="store_true")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    for i in range(a.n):
        turns = rng.choice([1, 1, 1, 2, 3, 4])
        long = rng.random() < 0.25
        msgs = []
        for _ in range(turns):
            msgs.append(("user", text(rng, 1, 40 if long and rng.random() < 0.5 else 4)))
            if a.reasoning:
                if rng.random() < 0.2:  # a marker in the user's text too
                    msgs[-1] = ("user", msgs[-1][1] + rng.choice(R1_MARKERS))
                msgs.append(("assistant", reasoning_text(rng, 1, 30 if long else 3)))
            else:
                msgs.append(("assistant", text(rng, 1, 60 if long else 6)))
        sysmode = rng.choice(["absent", "empty", "set"])
        system = text(rng, 1, 3) if sysmode == "set" else ""
        rec = {"id": f"case/{i}"}
        if a.layout == "messages":
            ms = [{"role": "system", "content": system}] if sysmode == "set" else []
            ms += [{"role": r, "content": c} for r, c in msgs]
            rec["messages"] = ms
        else:
            if sysmode != "absent":
                rec["system"] = system
            rec["conversations"] = [{"from": r, "value": c} for r, c in msgs]
        print(json.dumps(rec, ensure_ascii=False))


if __name__ == "__main__":
    main()
