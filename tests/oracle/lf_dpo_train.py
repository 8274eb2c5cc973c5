#!/usr/bin/env python3
"""Train with LLaMA-Factory's own `stage: dpo` (its CustomDPOTrainer on TRL's
DPOTrainer), one run per case, in one process, so the shell tests compare
ds-train's DPO stage with it.

    lf_dpo_train.py MODEL_DIR DATASET_DIR NAME OUT_DIR CASES.json

CASES.json: {"name": {LLaMA-Factory training keys}, ...}; each case runs
with the keys below, overridden by its own, into OUT_DIR/name, and leaves
there what LLaMA-Factory saves: model.safetensors, trainer_state.json (its
log_history holds loss and the rewards/logps metrics of every step).

One known error of the reference is mended here, and only that: LLaMA-Factory
0.9.5 calls TRL 0.24's dpo_loss without its loss_type argument, so
pref_loss ipo and hinge train with the sigmoid loss (TRL's default) while
they average the log-probabilities as IPO does. The case {"pref_loss":
"hinge"} therefore calls dpo_loss with loss_type set to pref_loss; a case
with "_unmended": true keeps the reference as it is, to show the
difference. ds-train computes the loss pref_loss names.
"""
import json
import os
import sys

from lf_common import claim_stdout

BASE = {
    "stage": "dpo",
    "do_train": True,
    "finetuning_type": "full",
    "template": "qwen",
    "cutoff_len": 1024,
    "overwrite_cache": True,
    "overwrite_output_dir": True,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 2,
    "learning_rate": 1.0e-3,
    "max_steps": 3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0,
    "adam_epsilon": 1.0e-6,
    "max_grad_norm": 1.0,
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": "none",
    "disable_shuffling": True,
    "seed": 3,
    "bf16": False,
    "fp16": False,
    "dataloader_num_workers": 0,
    "preprocessing_num_workers": None,
    "plot_loss": False,
}


def mend(unmended: bool):
    """Let dpo_loss see the loss type LLaMA-Factory was asked for."""
    from llamafactory.train.dpo.trainer import CustomDPOTrainer
    from trl import DPOTrainer

    if not hasattr(mend, "orig"):
        mend.orig = DPOTrainer.dpo_loss
    if unmended:
        CustomDPOTrainer.dpo_loss = mend.orig
    else:
        def dpo_loss(self, *args, **kwargs):
            kwargs.setdefault("loss_type", self.loss_type)
            return mend.orig(self, *args, **kwargs)
        CustomDPOTrainer.dpo_loss = dpo_loss


def main():
    model, data_dir, name, out, cases = sys.argv[1:6]
    log = claim_stdout()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    torch.use_deterministic_algorithms(True)
    from llamafactory.train.tuner import run_exp

    with open(cases) as f:
        cases = json.load(f)
    for case, keys in cases.items():
        keys = dict(keys)
        mend(keys.pop("_unmended", False))
        args = dict(BASE, model_name_or_path=model, dataset=name, dataset_dir=data_dir,
                    output_dir=os.path.join(out, case))
        args.update(keys)
        run_exp(args)
        print(json.dumps({"case": case, "done": True}), file=log, flush=True)
    log.close()


if __name__ == "__main__":
    main()
