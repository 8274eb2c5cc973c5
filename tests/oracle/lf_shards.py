#!/usr/bin/env python3
"""What LLaMA-Factory's own preprocessing makes of a sharegpt dataset, one
JSON line per training sample, in the shape `ds-tokenize inspect --json`
prints, so the shell tests compare the two with diff.

    lf_shards.py DATASET_DIR NAME TOKENIZER_DIR [--template qwen] [--cutoff N]
                 [--train-on-prompt] [--mask-history] [--neat-packing]
                 [--preserve-thinking] [--no-thinking] [--pairwise]

--preserve-thinking and --no-thinking set LLaMA-Factory's preserve_thinking
true and enable_thinking false (reasoning templates such as deepseekr1;
ds-tokenize does what their defaults do): the tests use them to show that
the comparison tells thought handling apart.

Each line: {"input_ids", "labels" (-100 where masked), "docs" (tokens per
document)}. --pairwise reads a ranking dataset as `stage: dpo` does
(get_dataset(..., stage="rm"), the PairwiseDatasetProcessor) and prints
each pair as two lines, the chosen side, then the rejected side with
"rejected": true. Packed samples lose LLaMA-Factory's right padding (pad tokens,
labels -100), which ds-train adds itself; their documents are its
packing_params.sequence_boundaries without the padding.
"""
import json

from lf_common import claim_stdout, dataset_args, load


def main():
    ap = dataset_args(__doc__)
    ap.add_argument("--train-on-prompt", action="store_true")
    ap.add_argument("--mask-history", action="store_true")
    ap.add_argument("--neat-packing", action="store_true")
    ap.add_argument("--preserve-thinking", action="store_true")
    ap.add_argument("--no-thinking", action="store_true")
    ap.add_argument("--pairwise", action="store_true")
    a = ap.parse_args()
    result = claim_stdout()
    extra = {"train_on_prompt": a.train_on_prompt, "mask_history": a.mask_history}
    if a.neat_packing:
        extra["neat_packing"] = True
    if a.preserve_thinking:
        extra["preserve_thinking"] = True
    if a.no_thinking:
        extra["enable_thinking"] = False
    if a.pairwise:
        _, _, tokenized = load(a, stage="dpo", data_stage="rm", **extra)
        for row in tokenized:
            for side in ("chosen", "rejected"):
                ids, labels = row[side + "_input_ids"], row[side + "_labels"]
                line = {"input_ids": ids, "labels": labels, "docs": [len(ids)]}
                if side == "rejected":
                    line["rejected"] = True
                print(json.dumps(line, separators=(",", ":")), file=result)
        result.close()
        return
    _, _, tokenized = load(a, **extra)
    for row in tokenized:
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
