"""ds-judge's driver for call-based test cases (APPS / TACO "fn_name").

It runs inside the sandbox, beside solution.py (the code under test). It
reads {"fn_name", "inputs", "expected"} from standard input, calls the
function -- or the method of Solution() when the code defines that class --
with the inputs as its arguments, and prints one line: a mark, "pass" or
"fail", and the repr of what the call returned. It exits 3 when the code
does not compile and 4 when it lacks the function; an exception raised by
the code propagates (a traceback on stderr, exit status 1).
"""
import io
import json
import sys

MARK = "\x1eds-judge-result "

# What the APPS harness puts before call-based code, so that LeetCode-style
# solutions that use List[int] or Counter without importing them still run.
PRELUDE = """\
import sys, time, itertools, collections, heapq, bisect, math, random, string, re, functools, fractions
from itertools import accumulate, product, permutations, combinations
from collections import Counter, OrderedDict, deque, defaultdict, ChainMap
from functools import lru_cache, reduce, cmp_to_key
from heapq import *
from math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2, inf
from typing import *
"""


def same(got, want):
    """Equality as JSON sees it (a tuple is a list), floats to within
    numpy.allclose's tolerance; integers and everything else exactly."""
    if isinstance(got, tuple):
        got = list(got)
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    if isinstance(got, dict) and isinstance(want, dict):
        got = {str(k): v for k, v in got.items()}
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    numbers = (int, float)
    if (isinstance(got, float) or isinstance(want, float)) and isinstance(got, numbers) \
            and isinstance(want, numbers) and not isinstance(got, bool) and not isinstance(want, bool):
        return abs(got - want) <= 1e-8 + 1e-5 * abs(want)
    return got == want


def main():
    req = json.load(sys.stdin)
    with open("solution.py", encoding="utf-8", errors="replace") as f:
        src = f.read()
    try:
        code = compile(src, "solution.py", "exec")
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", None)
        print(f"{type(e).__name__}: {getattr(e, 'msg', e)}" + (f" (line {line})" if line else ""),
              file=sys.stderr)
        sys.exit(3)
    ns = {"__name__": "solution", "__builtins__": __builtins__}
    exec(PRELUDE, ns)
    out = sys.stdout
    sys.stdout = io.StringIO()  # what the code prints is not its answer
    exec(code, ns)
    name = req["fn_name"]
    sol = ns.get("Solution")
    fn = getattr(sol(), name, None) if isinstance(sol, type) else None
    if fn is None:
        fn = ns.get(name)
    if not callable(fn):
        print(f"the code defines no function {name}", file=sys.stderr)
        sys.exit(4)
    got = fn(*req["inputs"])
    sys.stdout = out
    want = req["expected"]
    ok = same(got, want) or (isinstance(want, list) and len(want) == 1 and same(got, want[0]))
    text = repr(got)
    if len(text) > 100:
        text = text[:100] + "..."
    text = text.replace("\n", "\\n")
    sys.__stdout__.write(f"\n{MARK}{'pass' if ok else 'fail'} {text}\n")
    sys.__stdout__.flush()


main()
