"""What tests/oracle/lf_*.py share: LLaMA-Factory run offline, its chatter
kept off our stdout, and a dataset put through its own data pipeline.

LLaMA-Factory logs and prints a training example on fd 1, so the scripts
take fd 1 for their records first (claim_stdout) and let everything else
go to stderr.
"""
import argparse
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")


def claim_stdout():
    """A text file on the real stdout; fd 1 itself now goes to stderr."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(out_fd, "w", encoding="utf-8")


def dataset_args(description: str) -> argparse.ArgumentParser:
    """DATASET_DIR NAME TOKENIZER_DIR [--template T] [--cutoff N]."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("dataset_dir")
    ap.add_argument("name")
    ap.add_argument("tokenizer_dir")
    ap.add_argument("--template", default="qwen")
    ap.add_argument("--cutoff", type=int, default=8192)
    return ap


def load(a, stage="sft", data_stage=None, aligned=False, **extra):
    """Dataset a.name from a.dataset_dir through LLaMA-Factory, as a training
    run of `stage` (its arguments checked by get_train_args) reads it, with
    data_stage (default: stage) for get_dataset, as its workflows call it.
    extra: more training arguments. Returns (tokenizer, rows, tokenized):
    rows, when aligned, are the converter's aligned examples (_system,
    _prompt, _response), one per tokenized example, in input order."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.loader import _get_merged_dataset, get_dataset
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    data_stage = data_stage or stage
    with tempfile.TemporaryDirectory() as out:
        model_args, data_args, training_args, finetuning_args, _ = get_train_args(dict({
            "model_name_or_path": a.tokenizer_dir,
            "stage": stage,
            "do_train": True,
            "finetuning_type": "full",
            "dataset": a.name,
            "dataset_dir": a.dataset_dir,
            "template": a.template,
            "cutoff_len": a.cutoff,
            "output_dir": out,
            "overwrite_cache": True,
            "report_to": "none",
        }, **extra))
        assert finetuning_args.stage == stage
        tok_mod = load_tokenizer(model_args)
        template = get_template_and_fix_tokenizer(tok_mod["tokenizer"], data_args)
        rows = None
        if aligned:
            rows = _get_merged_dataset(data_args.dataset, model_args, data_args, training_args, data_stage)
        module = get_dataset(template, model_args, data_args, training_args, data_stage, **tok_mod)
    tokenized = module["train_dataset"]
    if rows is not None and len(rows) != len(tokenized):
        sys.exit(f"{os.path.basename(sys.argv[0])}: {len(rows)} aligned but {len(tokenized)} tokenized")
    return tok_mod["tokenizer"], rows, tokenized
