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
import json

from lf_common import claim_stdout, dataset_args, load


def main():
    a = dataset_args(__doc__).parse_args()
    result = claim_stdout()
    tokenizer, aligned, tokenized = load(a, stage="dpo", data_stage="rm", aligned=True)

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
