"""Check what the C writer made of a file against the reference: OUT (a
model directory written by `test_safetensors convert ORIG OUT DTYPE MAX`)
must load with safetensors.torch.load_file and hold, tensor for tensor and
in the same order, torch's own .to(DTYPE) of ORIG widened to fp32 (NaNs
compared as NaNs, every other value bit for bit); sharded as
huggingface_hub splits the same state dict, with transformers' index text
byte for byte; and each file's header byte for byte what
safetensors.torch.save writes for the same tensors, when its order is ours.

    st_check.py ORIG OUT F32|BF16|F16 MAX_SHARD_BYTES [--transformers]

--transformers: also load OUT with AutoModelForCausalLM.from_pretrained and
compare its parameters likewise."""
import json
import os
import struct
import sys

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors.torch import save
from st_common import files_of, load_ordered

orig, out, dtname, max_shard = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
dtype = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}[dtname]
want = [(k, v.to(torch.float32).to(dtype)) for k, v in load_ordered(orig)]
got = load_ordered(out)
bad = 0


def same(a, b):
    """Bit for bit, but any NaN equals any NaN (torch's own NaN bits
    differ between its scalar and vector paths)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    ia, ib = a.contiguous().view(-1).view(torch.uint8), b.contiguous().view(-1).view(torch.uint8)
    na, nb = torch.isnan(a.float()).view(-1), torch.isnan(b.float()).view(-1)
    if not torch.equal(na, nb):
        return False
    w = a.element_size()
    keep = (~na).repeat_interleave(w)
    return torch.equal(ia[keep], ib[keep])


# Sharding and the index, as huggingface_hub and transformers make them.
sd = dict(want)
split = split_torch_state_dict_into_shards(sd, max_shard_size=max_shard) if max_shard else None
order = [k for k, _ in want]
if split is not None and split.is_sharded:  # shard by shard, each in the order added
    order = [k for f in sorted(split.filename_to_tensors) for k in split.filename_to_tensors[f]]
if order != [k for k, _ in got]:
    print("names or order differ:", order, [k for k, _ in got])
    sys.exit(1)
for k, b in got:
    a = sd[k]
    if not same(a, b):
        print("tensor %s differs: want %s %s, got %s %s" % (k, a.dtype, list(a.shape), b.dtype, list(b.shape)))
        bad = 1
files = [os.path.basename(f) for f in files_of(out)]
if split is None or not split.is_sharded:
    if files != ["model.safetensors"] or os.path.exists(os.path.join(out, "model.safetensors.index.json")):
        print("expected one model.safetensors, got", sorted(os.listdir(out)))
        bad = 1
else:
    index = {"metadata": {"total_parameters": sum(v.numel() for v in sd.values()), **split.metadata},
             "weight_map": split.tensor_to_filename}
    text = json.dumps(index, indent=2, sort_keys=True) + "\n"
    with open(os.path.join(out, "model.safetensors.index.json")) as f:
        mine = f.read()
    if mine != text:
        print("index differs:\n--- want\n%s--- got\n%s" % (text, mine))
        bad = 1
    if os.path.exists(os.path.join(out, "model.safetensors")):
        print("a stale model.safetensors beside the shards")
        bad = 1
    if sorted(files) != sorted(split.filename_to_tensors):
        print("shard files differ:", files, sorted(split.filename_to_tensors))
        bad = 1

# Headers byte for byte (the Python package orders by dtype, then name: so
# only where that is our order).
for f in files_of(out):
    with open(f, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        mine = fh.read(n)
    with open(f, "rb") as fh:
        names = list(json.loads(fh.read(8 + n)[8:]).keys())
    names = [k for k in names if k != "__metadata__"]
    if names != sorted(names):
        continue
    ref = save({k: sd[k] for k in names}, metadata={"format": "pt"})
    rn = struct.unpack("<Q", ref[:8])[0]
    if ref[8:8 + rn] != mine:
        print("%s: header differs:\n want %r\n got  %r" % (f, ref[8:8 + rn], mine))
        bad = 1

if "--transformers" in sys.argv[5:]:
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(out, dtype=dtype)
    params = dict(model.state_dict())
    for k, a in want:
        if k not in params or not same(a, params[k]):
            print("transformers: %s differs or is missing" % k)
            bad = 1
sys.exit(bad)
