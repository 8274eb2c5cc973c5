#!/usr/bin/env python3
"""LLaMA-Factory's inference prompt: the token ids its chat engines feed the
model for a conversation that ends with a user turn (Template.encode_oneturn
of the messages and an empty assistant reply, as llamafactory.chat's
HuggingfaceEngine does). Golden numbers for tests/unit/test_chat.c.

    lf_prompt.py TOKENIZER_DIR TEMPLATE [FILE]

FILE: JSONL records {"system": "..." (optional), "messages": [{"role",
"content"}, ...]}; prints one JSON list of ids a record.
"""
import json
import sys

from lf_common import claim_stdout


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    result = claim_stdout()

    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(sys.argv[1])
    template = get_template_and_fix_tokenizer(tok, DataArguments(template=sys.argv[2]))
    f = open(sys.argv[3], encoding="utf-8") if len(sys.argv) == 4 else sys.stdin
    for line in f:
        rec = json.loads(line)
        messages = rec["messages"] + [{"role": "assistant", "content": ""}]
        prompt, _ = template.encode_oneturn(tok, messages, rec.get("system"))
        print(json.dumps(prompt), file=result)
    result.close()


if __name__ == "__main__":
    main()
