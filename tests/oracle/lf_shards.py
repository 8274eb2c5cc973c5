#!/usr/bin/env python3
"""What LLaMA-Factory's own preprocessing makes of a sharegpt dataset, one
JSON line per training sample, in the shape `ds-tokenize inspect --json`
prints, so the shell tests compare the two with diff.

    lf_shards.py DATASET_DIR NAME TOKENIZER_DIR [--template qwen] [--cutoff N]
                 [--train-on-prompt] [--mask-history] [--neat-packing]
                 [--preserve-thinking] [--no-thinking]

--preserve-thinking and --no-thinking set LLaMA-Factory's preserve_thinking
true and enable_thinking false (reasoning templates such as deepseekr1;
ds-tokenize does what their defaults do): the tests use them to show that
the comparison tells thought handling apart.

Each line: {"input_ids", "labels" (-100 where masked), "docs" (tokens per
document)}. Packed samples lose LLaMA-Factory's right padding (pad tokens,
labels -100), which ds-train adds itself; their documents are its
packing_params.sequence_boundaries without the padding.
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
    ap.add_argument("--train-on-prompt", action="store_true")
    ap.add_argument("--mask-history", action="store_true")
    ap.add_argument("--neat-packing", action="store_true")
    ap.add_argument("--preserve-thinking", action="store_true")
    ap.add_argument("--no-thinking", action="store_true")
    a = ap.parse_args()

    # LLaMA-Factory prints a training example on stdout: keep fd 1 for us.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    result = os.fdopen(out_fd, "w", encoding="utf-8")

    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.loader import get_dataset
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    with tempfile.TemporaryDirectory() as out:
        args = {
            "model_name_or_path": a.tokenizer_dir,
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "full",
            "dataset": a.name,
            "dataset_dir": a.dataset_dir,
            "template": a.template,
            "cutoff_len": a.cutoff,
            "output_dir": out,
            "overwrite_cache": True,
            "report_to": "none",
            "train_on_prompt": a.train_on_prompt,
            "mask_history": a.mask_history,
        }
        if a.neat_packing:
            args["neat_packing"] = True
        if a.preserve_thinking:
            args["preserve_thinking"] = True
        if a.no_thinking:
            args["enable_thinking"] = False
        model_args, data_args, training_args, _, _ = get_train_args(args)
        tok_mod = load_tokenizer(model_args)
        template = get_template_and_fix_tokenizer(tok_mod["tokenizer"], data_args)
        module = get_dataset(template, model_args, data_args, training_args, "sft", **tok_mod)
        for row in module["train_dataset"]:
            ids, labels = row["input_ids"], row["labels"]
            if a.neat_packing:
                pp = row["packing_params"]
                pad = pp["right_padding_length"]
                bounds = pp["sequence_boundaries"]
                if pad:
                    ids, labels, bounds = ids[:-pad], labels[:-pad], bounds[:-1]
                docs = [bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)]
            else:
                docs = [len(ids)]
            print(json.dumps({"input_ids": ids, "labels": labels, "docs": docs},
                             separators=(",", ":")), file=result)
    result.close()


if __name__ == "__main__":
    main()
