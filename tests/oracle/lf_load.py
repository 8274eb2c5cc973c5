#!/usr/bin/env python3
"""Load a dataset through LLaMA-Factory's own data pipeline and print what it
saw, one JSON object per example, so the shell tests can compare it with what
ds-sharegpt meant to write.

    lf_load.py DATASET_DIR NAME TOKENIZER_DIR [--template qwen] [--cutoff N]

Each output line: {"system", "prompt", "response"} as LLaMA-Factory's
converter aligned them, plus "input_ids" and "labels" (-100 where masked)
after its template and tokenizer, and those decoded: "text" (everything)
and "trained_text" (the tokens not masked). Examples keep input order.
"""
import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset_dir")
    ap.add_argument("name")
    ap.add_argument("tokenizer_dir")
    ap.add_argument("--template", default="qwen")
    ap.add_argument("--cutoff", type=int, default=8192)
    ap.add_argument("--stage", default="sft")
    a = ap.parse_args()

    # LLaMA-Factory logs and prints a training example on stdout: send all
    # of fd 1 to stderr and keep the real stdout for our records.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    result = os.fdopen(out_fd, "w", encoding="utf-8")

    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.loader import _get_merged_dataset, get_dataset
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    with tempfile.TemporaryDirectory() as out:
        model_args, data_args, training_args, _, _ = get_train_args(
            {
                "model_name_or_path": a.tokenizer_dir,
                "stage": a.stage,
                "do_train": True,
                "finetuning_type": "full",
                "dataset": a.name,
                "dataset_dir": a.dataset_dir,
                "template": a.template,
                "cutoff_len": a.cutoff,
                "output_dir": out,
                "overwrite_cache": True,
                "report_to": "none",
            }
        )
        tok_mod = load_tokenizer(model_args)
        tokenizer = tok_mod["tokenizer"]
        template = get_template_and_fix_tokenizer(tokenizer, data_args)
        aligned = _get_merged_dataset(
            data_args.dataset, model_args, data_args, training_args, a.stage
        )
        module = get_dataset(
            template, model_args, data_args, training_args, a.stage, **tok_mod
        )
        tokenized = module["train_dataset"]
        if len(aligned) != len(tokenized):
            print(f"lf_load: {len(aligned)} aligned but {len(tokenized)} tokenized",
                  file=sys.stderr)
            sys.exit(1)
    for row, tok in zip(aligned, tokenized):
        print(json.dumps({
            "system": row["_system"],
            "prompt": row["_prompt"],
            "response": row["_response"],
            "input_ids": tok["input_ids"],
            "labels": tok["labels"],
            "trained_text": tokenizer.decode(
                [t for t in tok["labels"] if t != -100]),
            "text": tokenizer.decode(tok["input_ids"]),
        }, ensure_ascii=False), file=result)
    result.close()


if __name__ == "__main__":
    main()
