#!/usr/bin/env python3
"""Load a dataset through LLaMA-Factory's own data pipeline and print what it
saw, one JSON object per example, so the shell tests can compare it with what
ds-sharegpt meant to write.

    lf_load.py DATASET_DIR NAME TOKENIZER_DIR [--template qwen] [--cutoff N] [--stage sft]

Each output line: {"system", "prompt", "response"} as LLaMA-Factory's
converter aligned them, plus "input_ids" and "labels" (-100 where masked)
after its template and tokenizer, and those decoded: "text" (everything)
and "trained_text" (the tokens not masked). Examples keep input order.
"""
import json

from lf_common import claim_stdout, dataset_args, load


def main():
    ap = dataset_args(__doc__)
    ap.add_argument("--stage", default="sft")
    a = ap.parse_args()
    result = claim_stdout()
    tokenizer, aligned, tokenized = load(a, stage=a.stage, aligned=True)
    for row, tok in zip(aligned, tokenized):
        print(json.dumps({
            "system": row["_system"],
            "prompt": row["_prompt"],
            "response": row["_response"],
            "input_ids": tok["input_ids"],
            "labels": tok["labels"],
            "trained_text": tokenizer.decode([t for t in tok["labels"] if t != -100]),
            "text": tokenizer.decode(tok["input_ids"]),
        }, ensure_ascii=False), file=result)
    result.close()


if __name__ == "__main__":
    main()
