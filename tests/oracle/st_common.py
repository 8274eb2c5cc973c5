"""Shared by the st_*.py oracles: a safetensors file or model directory
read with the reference (safetensors.torch), tensors in file order."""
import json
import os
import struct

import torch
from safetensors.torch import load_file


def file_order(path):
    """Tensor names of one file in data-offset order (the header's own)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    return sorted(hdr, key=lambda k: tuple(hdr[k]["data_offsets"]))


def files_of(path):
    """The files of a .safetensors file or a model directory, in order."""
    if not os.path.isdir(path):
        return [path]
    single = os.path.join(path, "model.safetensors")
    if os.path.exists(single):
        return [single]
    with open(os.path.join(path, "model.safetensors.index.json")) as f:
        index = json.load(f)
    return [os.path.join(path, s) for s in sorted(set(index["weight_map"].values()))]


def load_ordered(path):
    """[(name, tensor)] of a file or model directory, in file order."""
    out = []
    for f in files_of(path):
        d = load_file(f)
        out += [(k, d[k]) for k in file_order(f)]
    return out


def f32_bits(t):
    """The fp32 bit patterns of t widened (exactly) to fp32, as a list."""
    return t.to(torch.float32).contiguous().view(torch.int32).flatten().tolist()
