"""Print a safetensors file or model directory as `test_safetensors dump`
does, from the reference reader: one line per tensor in file order,
NAME DTYPE [SHAPE] then each value widened to fp32 as 8 hex digits ("-"
for dtypes other than F32/F16/BF16), a NaN as "nan" (torch's widening of
an f16 NaN drops its payload and sign on some paths)."""
import sys

import torch
from st_common import f32_bits, load_ordered

NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int8: "I8",
         torch.uint8: "U8", torch.int32: "I32", torch.int64: "I64", torch.float64: "F64",
         torch.bool: "BOOL", torch.int16: "I16"}

for name, t in load_ordered(sys.argv[1]):
    dt = NAMES[t.dtype]
    line = "%s %s [%s]" % (name, dt, ",".join(str(d) for d in t.shape))
    if dt in ("F32", "F16", "BF16"):
        line += "".join(" nan" if (v & 0x7fffffff) > 0x7f800000 else " %08x" % (v & 0xffffffff)
                        for v in f32_bits(t))
    else:
        line += " -"
    print(line)
