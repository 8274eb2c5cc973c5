"""Write the safetensors fixtures t-safetensors.sh reads, with the
reference writers: safetensors.torch.save_file, and transformers'
save_pretrained (one file, and sharded) of a tiny random Qwen2.

    st_make.py OUTDIR
"""
import os
import struct
import sys

import torch
from safetensors.torch import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)


def from_bits(bits):
    return torch.tensor([b - (1 << 32) if b >= 1 << 31 else b for b in bits], dtype=torch.int32).view(torch.float32)


# Rounding edge cases for bf16 and f16: ties either way, carries into the
# exponent, f16 overflow and subnormals, f32 subnormals, signed zeros, inf.
EDGES = [0x00000000, 0x80000000, 0x3f800000, 0x3f808000, 0x3f818000, 0x3f808001, 0x3f80ffff, 0xbf818000,
         0x7f7fffff, 0xff7fffff, 0x7f7f7fff, 0x7f7f8000, 0x7f800000, 0xff800000, 0x00000001, 0x807fffff,
         0x00800000, 0x477fe000, 0x477fefff, 0x477ff000, 0x47800000, 0x33800000, 0x33000000, 0x33000001,
         0x33400000, 0x387fc000, 0x387fe000, 0x38800000, 0x3a800800, 0x3a801800, 0x3c001000, 0x3c003000]
NANS = [0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xffffffff]

edges = from_bits(EDGES)
nans = from_bits(NANS)
wide = torch.randn(1000) * torch.exp2(torch.randint(-40, 40, (1000,)).float())


def tensors(with_nan):
    d = {
        "a.edges": torch.cat([edges, nans]) if with_nan else edges,
        "b.wide": wide,
        "c.randn": torch.randn(3, 4, 5),
        "d.scalar": torch.tensor(1.5),
        "e.empty": torch.zeros(0, 3),
        "f.eight_dims": torch.randn(2, 1, 2, 1, 2, 1, 2, 1),
        "g.bits": torch.randint(-(1 << 31), 1 << 31, (4096,), dtype=torch.int64).to(torch.int32).view(torch.float32),
    }
    if not with_nan:
        del d["g.bits"]  # random bits hold NaNs
    return d


meta = {"format": "pt"}
all_ = tensors(True)
save_file(all_, os.path.join(out, "f32.safetensors"), metadata=meta)
save_file(tensors(False), os.path.join(out, "f32-nonan.safetensors"), metadata=meta)
save_file({k: v.to(torch.float16) for k, v in all_.items()}, os.path.join(out, "f16.safetensors"), metadata=meta)
save_file({k: v.to(torch.bfloat16) for k, v in all_.items()}, os.path.join(out, "bf16.safetensors"), metadata=meta)
save_file({"w32": torch.randn(5, 3), "w16": torch.randn(7).half(), "wbf": torch.randn(3, 3).bfloat16(),
           "i8": torch.arange(-3, 4, dtype=torch.int8), "u8": torch.arange(5, dtype=torch.uint8),
           "zz": torch.randn(1).bfloat16()},
          os.path.join(out, "mixed.safetensors"), metadata=meta)

# A tiny Qwen2, saved by transformers as one file and as shards.
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402

cfg = Qwen2Config(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  tie_word_embeddings=False)
model = Qwen2ForCausalLM(cfg)
model.save_pretrained(os.path.join(out, "qwen"))
model.save_pretrained(os.path.join(out, "qwen-sharded"), max_shard_size="20KB")
model.to(torch.bfloat16).save_pretrained(os.path.join(out, "qwen-bf16-sharded"), max_shard_size="12KB")
