#!/usr/bin/env python3
"""Load a preference dataset the way LLaMA-Factory's `stage: dpo` does and
print what it saw, one JSON object per pair, so the shell tests can compare
it with what ds-sharegpt --format dpo meant to write.

    lf_dpo.py DATASET_DIR NAME TOKENIZER_DIR [--template qwen] [--cutoff N]

The arguments are checked by get_train_args with stage "dpo"; the data go
through the path its DPO workflow takes (llamafactory/train/dpo/workflow.py:
get_dataset(..., stage="rm"), the pairwise converter and processor). Each
output line: {"system", "prompt", "chosen", "rejected"} as the converter
aligned them, and "chosen_trained" / "rejected_trained": the tokens of each
side that are not masked, decoded. Pairs keep input order.
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
    a = ap.parse_args()

    # LLaMA-Factory prints an example on stdout: keep the real stdout for us.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    result = os.fdopen(out_fd, "w", encoding="utf-8")

    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.loader import _get_merged_dataset, get_dataset
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    with tempfile.TemporaryDirectory() as out:
        model_args, data_args, training_args, finetuning_args, _ = get_train_args(
            {
                "model_name_or_path": a.tokenizer_dir,
                "stage": "dpo",
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
        assert finetuning_args.stage == "dpo"
        tok_mod = load_tokenizer(model_args)
        tokenizer = tok_mod["tokenizer"]
        template = get_template_and_fix_tokenizer(tokenizer, data_args)
        aligned = _get_merged_dataset(data_args.dataset, model_args, data_args, training_args, "rm")
        module = get_dataset(template, model_args, data_args, training_args, stage="rm", **tok_mod)
        tokenized = module["train_dataset"]
        if len(aligned) != len(tokenized):
            print(f"lf_dpo: {len(aligned)} aligned but {len(tokenized)} tokenized", file=sys.stderr)
            sys.exit(1)

    def trained(labels):
        return tokenizer.decode([t for t in labels if t != -100])

    for row, tok in zip(aligned, tokenized):
        print(json.dumps({
            "system": row["_system"],
            "prompt": row["_prompt"],
            "chosen": row["_response"][0],
            "rejected": row["_response"][1],
            "chosen_trained": trained(tok["chosen_labels"]),
            "rejected_trained": trained(tok["rejected_labels"]),
            "chosen_text": tokenizer.decode(tok["chosen_input_ids"]),
        }, ensure_ascii=False), file=result)
    result.close()


if __name__ == "__main__":
    main()
