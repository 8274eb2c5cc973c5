#!/usr/bin/env python3
"""Compare a safetensors file against a reference one, tensor by tensor.

    compare_st.py A.safetensors B.safetensors [--rtol 1e-4]
                  [--only PREFIX,...] [--ignore PREFIX,...] [--top N]

B is the reference. Every tensor of B (after --only/--ignore, which match
name prefixes) must be in A with the same shape. The error of a tensor is
    max|a - b| / max(max|b|, 1e-12)
computed in float64 (any dtype is accepted, bf16 included; a NaN or an
infinity that the other side does not have at the same place makes the error
infinite). Prints the worst tensors with the index of their worst element and
both values there; exits 1 when a tensor is missing, has another shape or has
an error above rtol, or when nothing was compared; 0 otherwise.
"""
import argparse
import math
import sys


def load(path):
    from safetensors.torch import load_file
    return load_file(path)


def tensor_error(a, b):
    """(error, flat index of the worst element) of a against reference b."""
    import torch
    a = a.to(torch.float64).reshape(-1)
    b = b.to(torch.float64).reshape(-1)
    if b.numel() == 0:
        return 0.0, None
    fa, fb = torch.isfinite(a), torch.isfinite(b)
    bad = fa != fb
    # Non-finite on both sides: equal only when identical (same inf / both NaN).
    both = ~fa & ~fb
    bad |= both & ~((a == b) | (torch.isnan(a) & torch.isnan(b)))
    if bad.any():
        return math.inf, int(torch.nonzero(bad)[0])
    ok = fa & fb
    diff = torch.where(ok, (a - b).abs(), torch.zeros_like(a))
    i = int(torch.argmax(diff))
    scale = float(torch.where(ok, b.abs(), torch.zeros_like(b)).max())
    return float(diff[i]) / max(scale, 1e-12), i


def unravel(i, shape):
    idx = []
    for d in reversed(shape):
        idx.append(i % d if d else 0)
        i = i // d if d else 0
    return tuple(reversed(idx))


def selected(name, only, ignore):
    if only and not any(name.startswith(p) for p in only):
        return False
    return not any(name.startswith(p) for p in ignore)


def compare(a_path, b_path, rtol=1e-4, only=(), ignore=(), top=10, out=sys.stdout):
    """Returns the exit status (0 pass, 1 fail) and prints the report."""
    import torch
    A, B = load(a_path), load(b_path)
    names = sorted(n for n in B if selected(n, only, ignore))
    problems, rows = [], []
    for n in names:
        b = B[n]
        if n not in A:
            problems.append(f"MISSING {n}: reference shape {tuple(b.shape)} {b.dtype}")
            continue
        a = A[n]
        if tuple(a.shape) != tuple(b.shape):
            problems.append(f"SHAPE   {n}: got {tuple(a.shape)}, reference {tuple(b.shape)}")
            continue
        err, i = tensor_error(a, b)
        rows.append((err, n, tuple(b.shape), i, a, b))
    rows.sort(key=lambda r: (-r[0], r[1]))
    nfail = sum(1 for r in rows if not r[0] <= rtol)
    print(f"compare_st: {a_path} vs reference {b_path}: {len(names)} tensors, "
          f"rtol {rtol:g}", file=out)
    for p in problems:
        print("  " + p, file=out)
    show = rows[:max(top, nfail)]
    for err, n, shape, i, a, b in show:
        tag = "FAIL" if not err <= rtol else "ok  "
        where = ""
        if i is not None:
            at = unravel(i, shape)
            av = a.reshape(-1)[i].item()
            bv = b.reshape(-1)[i].item()
            bmax = b.to(torch.float64).abs().max().item()
            where = f" at {list(at)}: got {av:.9g}, ref {bv:.9g} (ref max|b| {bmax:.6g})"
        print(f"  {tag} {err:.3e} {n} {list(shape)}{where}", file=out)
    if len(rows) > len(show):
        print(f"  ... {len(rows) - len(show)} more tensors, all within rtol", file=out)
    extra = sorted(n for n in A if n not in B and selected(n, only, ignore))
    if extra:
        more = ", ..." if len(extra) > 5 else ""
        print(f"  note: {len(extra)} tensors only in {a_path} (not compared): "
              + ", ".join(extra[:5]) + more, file=out)
    if not names:
        print("compare_st: FAIL: no reference tensor selected", file=out)
        return 1
    if problems or nfail:
        print(f"compare_st: FAIL: {nfail} over rtol, {len(problems)} missing/misshapen",
              file=out)
        return 1
    worst = rows[0][0] if rows else 0.0
    print(f"compare_st: ok (worst {worst:.3e})", file=out)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="file under test")
    ap.add_argument("b", help="reference file")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--only", default="", help="comma-separated name prefixes to compare")
    ap.add_argument("--ignore", default="", help="comma-separated name prefixes to skip")
    ap.add_argument("--top", type=int, default=10, help="tensors to list (all failures are listed)")
    a = ap.parse_args(argv)
    split = lambda s: [p for p in s.split(",") if p]
    return compare(a.a, a.b, a.rtol, split(a.only), split(a.ignore), a.top)


if __name__ == "__main__":
    sys.exit(main())
