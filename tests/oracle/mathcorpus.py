#!/usr/bin/env python3
"""Write the math-judging corpus: (gold, predicted) answer pairs in the
forms real datasets use, each with the verdict a careful human grader gives.

    python3 tests/oracle/mathcorpus.py > tests/data/judge/corpus.jsonl

One JSON object a line: {"gold", "pred", "truth", "form"}. gold is a
reference answer as records carry it (the content of the reference's
\\boxed{}), pred what a reply's last \\boxed{} holds, truth true when a human
grader would mark pred right against gold, form the family it belongs to.

The families follow what NuminaMath-CoT, MATH, AMC/AIME and olympiad sets
put in their boxes: integers (with thousands separators), decimals,
fractions (\\frac, \\dfrac, a/b), mixed numbers, percentages, scientific
notation, degrees, units in \\text{}, radicals and pi, intervals and unions,
tuples, sets and lists, multiple-choice letters, \\pm, inequalities,
matrices, equations, expressions in several variables, words, and replies
that are not answers at all. Each gold comes with forms a human accepts
and near misses a human rejects (off by one, a sign, a reciprocal, a
rounded decimal, a swapped pair, a missing root, the wrong unit, a flipped
bracket...). Pairs whose truth is a matter of taste (is "2x+1" an answer to
"find the line"? is 0.333333 one third?) are left out on purpose.

Deterministic: a fixed seed and no other input; rerun it and the file does
not change (t-judge-corpus checks). Math-Verify's verdicts on it are in
corpus-mathverify.jsonl (tests/oracle/mathverify.py).
"""
import json
import random
import sys
from fractions import Fraction
from math import gcd

R = random.Random(20250205)
OUT = []


def emit(form, gold, same, wrong):
    """gold with the forms that equal it and those that do not; a form
    equal to the gold text itself is kept once, duplicates dropped."""
    seen = set()
    assert gold not in wrong, (form, gold)
    for pred, truth in [(p, True) for p in same] + [(p, False) for p in wrong]:
        if (pred, truth) in seen:
            continue
        seen.add((pred, truth))
        OUT.append({"gold": gold, "pred": pred, "truth": truth, "form": form})


def pick(xs, k):
    xs = list(dict.fromkeys(xs))
    return R.sample(xs, min(k, len(xs)))


def sep(n, mark=","):
    """n with thousands separators, 1234567 -> 1,234,567."""
    s = f"{abs(n):,}".replace(",", mark)
    return ("-" if n < 0 else "") + s


def frac(p, q, cmd="\\frac"):
    """p/q in LaTeX, the sign in front."""
    s = "-" if p * q < 0 else ""
    return f"{s}{cmd}{{{abs(p)}}}{{{abs(q)}}}"


def dec(x):
    """A Fraction with a terminating expansion as a plain decimal."""
    s = f"{float(x):.10f}".rstrip("0").rstrip(".")
    assert Fraction(s) == x, (s, x)
    return s


def terminates(f):
    q = f.denominator
    for p in (2, 5):
        while q % p == 0:
            q //= p
    return q == 1


UNITS = ["cm", "m", "km", "kg", "g", "dollars", "cents", "hours", "minutes",
         "seconds", "students", "ways", "days", "meters", "inches", "feet"]
OTHER_UNIT = {"cm": "m", "m": "cm", "km": "m", "kg": "g", "g": "kg",
              "hours": "minutes", "minutes": "seconds", "seconds": "minutes",
              "meters": "feet", "inches": "feet", "feet": "inches",
              "dollars": "cents", "cents": "dollars"}

# ---- numbers -----------------------------------------------------------------


def integers():
    for _ in range(45):
        mag = R.choice([9, 99, 999, 9999, 99999, 999999, 10**9])
        n = R.randint(0, mag) * R.choice([1, 1, 1, -1])
        s = str(n)
        same = [s, f"{n}.0", f"\\text{{{n}}}", f"{{{n}}}", f"\\mathbf{{{n}}}"]
        if abs(n) >= 1000:
            same += [sep(n), sep(n, "{,}")]
        if n >= 0:
            same.append(f"+{n}" if n else "0")
        wrong = [str(n + 1), str(n - 1), str(n * 10), str(n + R.choice([2, 9, 10, 100]))]
        if n:
            wrong.append(str(-n))
        if len(s.lstrip("-")) > 1 and s[-1] != s[-2]:
            wrong.append(s[:-2] + s[-1] + s[-2])  # two digits swapped
        if abs(n) >= 1000:
            wrong.append(sep(n + 1))
        gold = sep(n) if abs(n) >= 1000 and R.random() < 0.25 else s
        emit("integer", gold, pick(same, 4), pick(wrong, 3))


def decimals():
    for _ in range(27):
        places = R.choice([1, 2, 2, 3])
        x = Fraction(R.randint(1, 99999), 10**places) * R.choice([1, 1, -1])
        if x.denominator == 1:
            continue
        s = dec(x)
        same = [s, s + "0", s + "00", frac(x.numerator, x.denominator),
                frac(x.numerator, x.denominator, "\\dfrac"), f"{x.numerator}/{x.denominator}"]
        if abs(x) < 1:
            same.append(s.replace("0.", ".", 1))
        step = Fraction(1, 10**places)
        wrong = [dec(x + step), dec(x - step), dec(x * 10), dec(-x), s[:-1] if s[-2] != "." else s[:-2]]
        wrong = [w for w in wrong if w not in ("", "-") and Fraction(w) != x]
        emit("decimal", s, pick(same, 3), pick(wrong, 3))


def fractions():
    for _ in range(42):
        q = R.randint(2, 40)
        p = R.randint(1, 3 * q)
        if gcd(p, q) != 1:
            continue
        p *= R.choice([1, 1, 1, -1])
        f = Fraction(p, q)
        k = R.randint(2, 6)
        same = [frac(p, q), frac(p, q, "\\dfrac"), frac(p, q, "\\tfrac"), f"{p}/{q}",
                frac(k * p, k * q), f"\\left({frac(p, q)}\\right)", f"\\frac{{{p}}}{{{q}}}"]
        if abs(p) < 10 and q < 10:
            same.append(("-" if p < 0 else "") + f"\\frac{abs(p)}{q}")
        if terminates(f):
            same.append(dec(f))
        wrong = [frac(q, p), frac(p + 1, q), frac(p, q + 1), frac(-p, q), str(p), f"{q}/{p}"]
        if not terminates(f):
            wrong.append(f"{float(f):.2f}")  # a rounded decimal is not the fraction
            wrong.append(f"{float(f):.3f}")
        if abs(p) > q:  # the integer part alone
            wrong.append(str(int(f)))
        gold = R.choice([frac(p, q), frac(p, q), frac(p, q, "\\dfrac"), f"{p}/{q}"])
        emit("fraction", gold, pick(same, 4), pick(wrong, 3))


def mixed():
    for _ in range(15):
        w, q = R.randint(1, 12), R.randint(2, 12)
        p = R.randint(1, q - 1)
        if gcd(p, q) != 1:
            continue
        f = Fraction(w * q + p, q)
        m = f"{w}\\frac{{{p}}}{{{q}}}"
        same = [m, frac(f.numerator, f.denominator), f"{f.numerator}/{f.denominator}",
                f"{w}\\dfrac{{{p}}}{{{q}}}"]
        if terminates(f):
            same.append(dec(f))
        wrong = [frac(w * p, q), f"{w + 1}\\frac{{{p}}}{{{q}}}", frac(w * q - p, q), frac(p, q)]
        gold = R.choice([m, frac(f.numerator, f.denominator)])
        emit("mixed number", gold, pick(same, 3), pick(wrong, 3))


def percents():
    for _ in range(21):
        k = R.choice([R.randint(1, 100), R.randint(1, 999) / 10])
        k = int(k) if k == int(k) else k
        f = Fraction(str(k)) / 100
        same = [f"{k}\\%", f"{k} \\%", f"{k}", dec(f)]
        wrong = [f"{k + 1}\\%", f"{k + 1}", dec(f / 10), f"{dec(f)}\\%"]
        if k != 1:
            wrong.append(f"{dec(f * 10)}")
        gold = f"{k}\\%" if R.random() < 0.8 else dec(f)
        if gold == dec(f):
            same = [f"{k}\\%", dec(f), dec(f) + "0"]
        emit("percent", gold, pick(same, 3), pick(wrong, 3))


def scientific():
    for _ in range(18):
        a = R.choice([R.randint(1, 9), R.randint(11, 99) / 10, R.randint(101, 999) / 100])
        e = R.choice([R.randint(3, 9), -R.randint(1, 5)])
        x = Fraction(str(a)) * Fraction(10) ** e
        t = f"{a} \\times 10^{{{e}}}"
        same = [t, f"{a}\\times10^{{{e}}}", f"{a} \\cdot 10^{{{e}}}", dec(x)]
        if x.denominator == 1 and x >= 1000:
            same.append(sep(int(x)))
        if 0 <= e <= 9:
            same.append(f"{a}\\times 10^{e}")
        wrong = [f"{a} \\times 10^{{{e + 1}}}", f"{a} \\times 10^{{{e - 1}}}", dec(x * 10),
                 f"{a + 1} \\times 10^{{{e}}}", f"{a}^{{{e}}}"]
        emit("scientific", t, pick(same, 3), pick(wrong, 3))


def degrees():
    for _ in range(18):
        k = R.choice([R.randint(1, 179), R.choice([30, 45, 60, 90, 120, 135, 150])])
        forms = [f"{k}^\\circ", f"{k}^{{\\circ}}", f"{k}", f"{k}\\text{{ degrees}}", f"{k} ^\\circ"]
        gold = R.choice(forms[:3])
        wrong = [f"{180 - k}^\\circ", f"{k + 1}^\\circ", f"{k + 10}", f"{90 - k}^{{\\circ}}"]
        wrong = [w for w in wrong if not w.startswith(f"{k}^")]
        emit("degrees", gold, pick(forms, 3), pick(wrong, 2))


def units():
    for _ in range(27):
        n = R.choice([R.randint(1, 500), R.randint(1, 99) / 10])
        u = R.choice(UNITS)
        gold = R.choice([f"{n} \\text{{ {u}}}", f"{n}\\text{{ {u}}}", f"{n} \\mbox{{ {u}}}",
                         f"{n}", f"{n}\\ \\text{{{u}}}"])
        same = [f"{n}", f"{n}\\text{{{u}}}", f"{n} \\text{{ {u}}}", f"{n}\\,\\text{{{u}}}"]
        if u == "dollars":
            same.append(f"\\${n}")
        wrong = [f"{n + 1} \\text{{ {u}}}", f"{n * 10}", f"{n + 1}"]
        wrong = pick(wrong, 2)
        if u in OTHER_UNIT and "\\text" in gold and R.random() < 0.3:
            # the same number in another unit: a conversion forgotten
            wrong.append(f"{n} \\text{{ {OTHER_UNIT[u]}}}")
        emit("units", gold, pick(same, 3), wrong)
        if u in ("cm", "m", "km", "meters", "inches", "feet"):
            a = f"{n} \\text{{ {u}}}^2"
            emit("units", a, [f"{n}", f"{n}\\text{{ {u}}}^2", f"{n} \\text{{ {u}}}^{{2}}"],
                 [f"{n}^2", f"{n + 1}\\text{{ {u}}}^2"])


# ---- radicals, pi, expressions ----------------------------------------------

SQUAREFREE = [2, 3, 5, 6, 7, 10, 11, 13, 14, 15, 17, 19, 21, 22]


def radicals():
    for _ in range(27):
        a, b = R.randint(1, 9), R.choice(SQUAREFREE)
        c = R.randint(2, 9)
        kind = R.randrange(4)
        if kind == 0:
            gold = f"{a}\\sqrt{{{b}}}" if a > 1 else f"\\sqrt{{{b}}}"
            same = [gold, f"\\sqrt{{{a * a * b}}}", f"{a} \\sqrt{{{b}}}" if a > 1 else (f"\\sqrt {b}" if b < 10 else gold),
                    f"\\sqrt{{{b}}} \\cdot {a}", f"{a}\\sqrt{b}" if b < 10 else gold,
                    f"{a}*\\sqrt{{{b}}}", f"{a} \\cdot {b}^{{1/2}}" if a > 1 else f"{b}^{{1/2}}"]
            wrong = [f"{a}\\sqrt{{{b + 1}}}", f"{a + 1}\\sqrt{{{b}}}", f"\\sqrt{{{a * b}}}",
                     f"{a * b}", f"{a}" if a > 1 else f"{b}", f"{a * a * b}", f"-{a}\\sqrt{{{b}}}"]
        elif kind == 1:
            if gcd(a, c) != 1:
                continue
            gold = f"\\frac{{{a}\\sqrt{{{b}}}}}{{{c}}}"
            same = [gold, f"\\dfrac{{{a}\\sqrt{{{b}}}}}{{{c}}}", f"\\frac{{{a}}}{{{c}}}\\sqrt{{{b}}}",
                    f"{a}\\sqrt{{{b}}}/{c}", f"\\frac{{\\sqrt{{{a * a * b}}}}}{{{c}}}"]
            wrong = [f"\\frac{{{a}\\sqrt{{{b}}}}}{{{c + 1}}}", f"\\frac{{{c}\\sqrt{{{b}}}}}{{{a}}}",
                     f"\\frac{{{a}}}{{{c}}}", f"\\frac{{{a}\\sqrt{{{b + 1}}}}}{{{c}}}",
                     f"\\frac{{{a}}}{{{c}\\sqrt{{{b}}}}}"]
        elif kind == 2:
            gold = f"\\frac{{\\sqrt{{{b}}}}}{{{b}}}"
            same = [gold, f"\\frac{{1}}{{\\sqrt{{{b}}}}}", f"1/\\sqrt{{{b}}}", f"\\sqrt{{{b}}}/{b}",
                    f"\\frac{{\\sqrt{b}}}{{{b}}}" if b < 10 else gold]
            wrong = [f"\\sqrt{{{b}}}", f"\\frac{{\\sqrt{{{b}}}}}{{2}}", f"\\frac{{1}}{{{b}}}",
                     f"{b}\\sqrt{{{b}}}"]
        else:
            gold = f"{a} + \\sqrt{{{b}}}" if R.random() < 0.5 else f"{a} - \\sqrt{{{b}}}"
            sgn = "+" if "+" in gold else "-"
            other = "-" if sgn == "+" else "+"
            same = [gold, f"{a}{sgn}\\sqrt{{{b}}}", (f"\\sqrt{{{b}}} + {a}" if sgn == "+" else f"-\\sqrt{{{b}}} + {a}"),
                    f"{a} {sgn} \\sqrt {b}" if b < 10 else f"{a} {sgn} \\sqrt{{{b}}}"]
            wrong = [f"{a} {other} \\sqrt{{{b}}}", f"{a + 1} {sgn} \\sqrt{{{b}}}", f"{a} {sgn} {b}",
                     f"\\sqrt{{{a}{sgn}{b}}}"]
        emit("radical", gold, pick(same, 3), pick(wrong, 3))


def pis():
    for _ in range(21):
        k, m = R.randint(1, 12), R.randint(1, 12)
        if gcd(k, m) != 1:
            continue
        if m == 1:
            gold = f"{k}\\pi" if k > 1 else "\\pi"
            same = [gold, f"{k} \\pi" if k > 1 else "\\pi", f"\\pi \\cdot {k}", f"{k}*\\pi"]
            wrong = [f"{k + 1}\\pi", f"{k}", f"{2 * k}\\pi", f"\\frac{{{k}\\pi}}{{2}}", f"{k}\\pi^2",
                     f"{k * 3.14:g}"]
        else:
            gold = R.choice([f"\\frac{{{k}\\pi}}{{{m}}}", f"\\dfrac{{{k}\\pi}}{{{m}}}", f"\\frac{{{k}}}{{{m}}}\\pi"])
            if k == 1:
                gold = gold.replace("{1\\pi}", "{\\pi}")
            same = [gold, f"\\frac{{{k}}}{{{m}}}\\pi", f"{k}\\pi/{m}", f"\\frac{{{k}\\pi}}{{{m}}}",
                    f"\\frac{{{k * 2}\\pi}}{{{m * 2}}}"]
            if terminates(Fraction(k, m)):
                same.append(f"{dec(Fraction(k, m))}\\pi")
            wrong = [f"\\frac{{{m}\\pi}}{{{k}}}", f"\\frac{{{k}\\pi}}{{{m + 1}}}", f"\\frac{{{k}}}{{{m}}}",
                     f"\\frac{{{k + 1}\\pi}}{{{m}}}", f"{k * 3.14 / m:.2f}"]
        emit("pi", gold, pick(same, 3), pick(wrong, 3))


def polys():
    """Expressions in one or two variables, written in another order or
    another shape, and near misses."""
    for _ in range(33):
        v, w = R.choice([("x", "y"), ("a", "b"), ("m", "n"), ("x", "z"), ("s", "t")])
        a, b, c = R.randint(2, 9), R.randint(1, 9), R.randint(1, 9)
        kind = R.randrange(6)
        if kind == 0:  # linear
            if a == b:
                b = a + 1
            gold = f"{a}{v} + {b}"
            same = [gold, f"{b} + {a}{v}", f"{a}{v}+{b}", f"{b}+{v}\\cdot{a}", f"{a} \\cdot {v} + {b}"]
            wrong = [f"{a}{v} - {b}", f"{b}{v} + {a}", f"{a}{v} + {b + 1}", f"{a + b}{v}", f"{a}({v} + {b})"]
        elif kind == 1:  # product of two variables
            gold = f"{a}{v}{w}"
            same = [gold, f"{a}{w}{v}", f"{v}{w} \\cdot {a}", f"{a} {v} {w}", f"{w} \\cdot {a}{v}"]
            wrong = [f"{a}{v}", f"{a}{v}^2{w}", f"{a + 1}{v}{w}", f"{a}{v}+{w}", f"{v}{w}"]
        elif kind == 2:  # a square, expanded or not
            gold = f"({v} + {b})^2"
            same = [gold, f"{v}^2 + {2 * b}{v} + {b * b}", f"({b} + {v})^2", f"{b * b} + {2 * b}{v} + {v}^2",
                    f"\\left({v}+{b}\\right)^{{2}}"]
            wrong = [f"{v}^2 + {b * b}", f"{v}^2 + {b}{v} + {b * b}", f"({v} - {b})^2", f"{v}^2 + {2 * b}{v} - {b * b}"]
        elif kind == 3:  # a factored quadratic
            if c == b:
                c = b + 1
            gold = f"({v} - {b})({v} + {c})"
            same = [gold, f"({v} + {c})({v} - {b})", f"{v}^2 + {c - b}{v} - {b * c}".replace("+ -", "- ").replace(" + 0" + v, ""),
                    f"(-{b} + {v})({c} + {v})"]
            wrong = [f"({v} + {b})({v} - {c})", f"({v} - {b})({v} - {c})", f"{v}^2 - {b * c}",
                     f"({v} - {b + 1})({v} + {c})"]
        elif kind == 4:  # a rational expression
            gold = f"\\frac{{{v}}}{{{a}}}"
            same = [gold, f"{v}/{a}", f"\\frac{{1}}{{{a}}}{v}", f"\\dfrac{{{v}}}{{{a}}}"]
            if terminates(Fraction(1, a)):
                same.append(f"{dec(Fraction(1, a))}{v}")
            wrong = [f"\\frac{{{a}}}{{{v}}}", f"{a}{v}", f"\\frac{{{v}}}{{{a + 1}}}", f"\\frac{{{w}}}{{{a}}}"]
        else:  # powers
            e = R.randint(2, 5)
            gold = f"{v}^{{{e}}}{w}"
            same = [gold, f"{w}{v}^{{{e}}}", f"{v}^{e} {w}", f"{w} \\cdot {v}^{e}"]
            wrong = [f"{v}^{{{e + 1}}}{w}", f"{v}{w}^{{{e}}}", f"({v}{w})^{{{e}}}", f"{e}{v}{w}"]
        emit("expression", gold, pick(same, 3), pick(wrong, 3))


# ---- structures ------------------------------------------------------------


def intervals():
    for _ in range(24):
        a = R.randint(-20, 15)
        b = a + R.randint(1, 12)
        lo, hi = R.choice("[("), R.choice("])")
        kind = R.randrange(3)
        if kind == 0:
            gold = f"{lo}{a}, {b}{hi}"
            same = [gold, f"{lo}{a},{b}{hi}", f"\\left{lo}{a}, {b}\\right{hi}", f"{lo} {a} , {b} {hi}"]
            flip = {"[": "(", "(": "["}[lo] + f"{a}, {b}" + hi
            wrong = [flip, f"{lo}{a}, {b}" + {"]": ")", ")": "]"}[hi], f"{lo}{a}, {b + 1}{hi}",
                     f"{lo}{a - 1}, {b}{hi}"]
            if a != -b:
                wrong.append(f"{lo}{-b}, {-a}{hi}")
        elif kind == 1:
            gold = f"(-\\infty, {b}{hi}"
            same = [gold, f"(-\\infty,{b}{hi}", f"\\left(-\\infty, {b}\\right{hi}"]
            wrong = [f"({b}, \\infty)", f"(-\\infty, {b}" + {"]": ")", ")": "]"}[hi], f"(-\\infty, {b + 1}{hi}"]
        else:
            gold = f"{lo}{a}, \\infty)"
            same = [gold, f"{lo}{a},\\infty)", f"{lo}{a}, +\\infty)", f"\\left{lo}{a}, \\infty\\right)"]
            wrong = [f"(-\\infty, {a}{']' if lo == '[' else ')'}", {"[": "(", "(": "["}[lo] + f"{a}, \\infty)",
                     f"{lo}{a + 1}, \\infty)"]
        emit("interval", gold, pick(same, 3), pick(wrong, 3))
    for _ in range(12):
        a = R.randint(-10, 5)
        b = a + R.randint(1, 8)
        l1, r2 = R.choice(")]"), R.choice("[(")
        u1, u2 = f"(-\\infty, {a}{l1}", f"{r2}{b}, \\infty)"
        gold = f"{u1} \\cup {u2}"
        same = [gold, f"{u1}\\cup{u2}", f"{u2} \\cup {u1}", f"\\left{u1[0]}-\\infty,{a}\\right{l1}\\cup\\left{r2}{b},\\infty\\right)"]
        wrong = [u1, u2, f"{u1} \\cup ({b + 1}, \\infty)", f"{u1} \\cap {u2}",
                 f"(-\\infty, {a}" + {")": "]", "]": ")"}[l1] + f" \\cup {u2}"]
        emit("union", gold, pick(same, 2), pick(wrong, 3))


def tuples():
    for _ in range(27):
        n = R.choice([2, 2, 2, 3])
        xs = [R.randint(-9, 20) for _ in range(n)]
        if len(set(xs)) < n:
            continue
        t = ", ".join(map(str, xs))
        gold = f"({t})"
        fr = [f"\\frac{{{2 * x}}}{{2}}" for x in xs]
        same = [gold, "(" + ",".join(map(str, xs)) + ")", f"\\left({t}\\right)", "(" + ", ".join(fr) + ")",
                "(" + " , ".join(map(str, xs)) + ")"]
        ys = list(xs)
        ys[R.randrange(n)] += 1
        wrong = ["(" + ", ".join(map(str, reversed(xs))) + ")", "(" + ", ".join(map(str, ys)) + ")",
                 "(" + ", ".join(map(str, xs[:-1])) + ")" if n == 3 else f"({xs[0]})",
                 "(" + ", ".join(str(-x) for x in xs) + ")"]
        emit("tuple", gold, pick(same, 3), pick(wrong, 3))
    for _ in range(9):  # coordinates with fractions and radicals
        p, q = R.randint(1, 9), R.randint(2, 9)
        if gcd(p, q) != 1:
            continue
        b = R.choice(SQUAREFREE[:6])
        gold = f"\\left(\\frac{{{p}}}{{{q}}}, \\sqrt{{{b}}}\\right)"
        same = [gold, f"({p}/{q}, \\sqrt{{{b}}})", f"\\left(\\dfrac{{{p}}}{{{q}}},\\sqrt{b}\\right)",
                f"(\\frac{{{2 * p}}}{{{2 * q}}}, \\sqrt{{{b}}})"]
        wrong = [f"(\\sqrt{{{b}}}, \\frac{{{p}}}{{{q}}})", f"(\\frac{{{q}}}{{{p}}}, \\sqrt{{{b}}})",
                 f"(\\frac{{{p}}}{{{q}}}, {b})", f"(\\frac{{{p}}}{{{q}}}, -\\sqrt{{{b}}})"]
        emit("tuple", gold, pick(same, 3), pick(wrong, 3))


def sets():
    for _ in range(30):
        n = R.randint(2, 4)
        xs = R.sample(range(-12, 25), n)
        ys = list(xs)
        R.shuffle(ys)
        kind = R.randrange(3)
        if kind == 0:
            gold = "\\{" + ", ".join(map(str, xs)) + "\\}"
        elif kind == 1:
            gold = ", ".join(map(str, xs))
        else:
            gold = "\\left\\{" + ",".join(map(str, xs)) + "\\right\\}"
        same = ["\\{" + ", ".join(map(str, ys)) + "\\}", ", ".join(map(str, ys)), ",".join(map(str, xs)),
                "\\left\\{" + ", ".join(map(str, ys)) + "\\right\\}"]
        extra = max(xs) + R.randint(1, 5)
        zs = list(xs)
        zs[R.randrange(n)] -= 1
        wrong = [", ".join(map(str, xs[:-1])), ", ".join(map(str, xs + [extra])),
                 "\\{" + ", ".join(map(str, zs)) + "\\}", "\\{" + ", ".join(map(str, xs[1:])) + "\\}",
                 str(xs[0]), str(sum(xs))]
        emit("set", gold, pick(same, 3), pick(wrong, 3))
    for _ in range(9):  # roots with radicals and fractions
        a, b = R.randint(1, 9), R.choice(SQUAREFREE)
        gold = f"{a} + \\sqrt{{{b}}}, {a} - \\sqrt{{{b}}}"
        same = [f"{a} - \\sqrt{{{b}}}, {a} + \\sqrt{{{b}}}", f"\\{{{a}+\\sqrt{{{b}}}, {a}-\\sqrt{{{b}}}\\}}", gold]
        wrong = [f"{a} + \\sqrt{{{b}}}", f"{a} + \\sqrt{{{b}}}, {a} - \\sqrt{{{b + 1}}}", f"{a}, \\sqrt{{{b}}}"]
        emit("set", gold, pick(same, 2), pick(wrong, 2))


def letters():
    for _ in range(21):
        L = R.choice("ABCDE")
        others = [c for c in "ABCDE" if c != L]
        gold = R.choice([L, L, f"\\text{{({L})}}", f"({L})", f"\\textbf{{({L})}}", f"\\mathrm{{({L})}}"])
        same = [L, f"({L})", f"\\text{{{L}}}", f"\\text{{({L})}}", f"\\textbf{{({L})}}", f"\\mathrm{{{L}}}",
                f"\\mathbf{{{L}}}", f"\\textbf{{{L}}}"]
        wrong = [R.choice(others), f"({R.choice(others)})", f"\\text{{({R.choice(others)})}}",
                 f"\\textbf{{({R.choice(others)})}}"]
        emit("choice", gold, pick(same, 3), pick(wrong, 2))


def plusminus():
    for _ in range(18):
        k, a, b = R.randint(1, 15), R.randint(1, 9), R.choice(SQUAREFREE)
        kind = R.randrange(3)
        if kind == 0:
            gold = f"\\pm {k}"
            same = [gold, f"\\pm{k}", f"{k}, -{k}", f"-{k}, {k}", f"\\{{-{k}, {k}\\}}", f"\\mp {k}"]
            wrong = [f"{k}", f"-{k}", f"\\pm {k + 1}", f"{k}, {k + 1}", f"\\pm {2 * k}"]
        elif kind == 1:
            gold = f"{a} \\pm \\sqrt{{{b}}}"
            same = [gold, f"{a}\\pm\\sqrt{{{b}}}", f"{a} + \\sqrt{{{b}}}, {a} - \\sqrt{{{b}}}",
                    f"{a} - \\sqrt{{{b}}}, {a} + \\sqrt{{{b}}}", f"{a} \\pm \\sqrt {b}" if b < 10 else f"{a} \\pm\\sqrt{{{b}}}"]
            wrong = [f"{a} + \\sqrt{{{b}}}", f"{a} - \\sqrt{{{b}}}", f"-{a} \\pm \\sqrt{{{b}}}",
                     f"{a} \\pm \\sqrt{{{b + 1}}}", f"\\pm \\sqrt{{{b}}}"]
        else:
            gold = f"\\frac{{{a} \\pm \\sqrt{{{b}}}}}{{2}}"
            same = [gold, f"\\frac{{{a}+\\sqrt{{{b}}}}}{{2}}, \\frac{{{a}-\\sqrt{{{b}}}}}{{2}}",
                    f"\\dfrac{{{a} \\pm \\sqrt{{{b}}}}}{{2}}", f"({a} \\pm \\sqrt{{{b}}})/2"]
            wrong = [f"\\frac{{{a} + \\sqrt{{{b}}}}}{{2}}", f"{a} \\pm \\sqrt{{{b}}}",
                     f"\\frac{{-{a} \\pm \\sqrt{{{b}}}}}{{2}}", f"\\frac{{{a} \\pm \\sqrt{{{b}}}}}{{4}}"]
        emit("plus-minus", gold, pick(same, 3), pick(wrong, 3))


def inequalities():
    for _ in range(27):
        v = R.choice("xxxtak")
        a = R.randint(-10, 10)
        b = a + R.randint(1, 9)
        kind = R.randrange(3)
        if kind == 0:
            op = R.choice([">", "<", "\\ge", "\\le", "\\geq", "\\leq"])
            strict = op in "<>"
            up = op in (">", "\\ge", "\\geq")
            flip = {">": "<", "<": ">", "\\ge": "\\le", "\\le": "\\ge", "\\geq": "\\leq", "\\leq": "\\geq"}[op]
            loose = {">": "\\ge", "<": "\\le", "\\ge": ">", "\\le": "<", "\\geq": ">", "\\leq": "<"}[op]
            alt = {"\\ge": "\\geq", "\\geq": "\\ge", "\\le": "\\leq", "\\leq": "\\le"}.get(op, op)
            gold = f"{v} {op} {a}"
            iv = (("(" if strict else "[") + f"{a}, \\infty)") if up else (f"(-\\infty, {a}" + (")" if strict else "]"))
            same = [gold, f"{v}{op}{a}" if op in "<>" else f"{v} {alt} {a}", f"{a} {flip} {v}", iv]
            wrong = [f"{v} {flip} {a}", f"{v} {loose} {a}", f"{v} {op} {a + 1}", f"{v} {op} {-a}" if a else f"{v} {op} 1"]
        elif kind == 1:
            l, r = R.choice(["<", "\\le"]), R.choice(["<", "\\le"])
            gold = f"{a} {l} {v} {r} {b}"
            iv = ("(" if l == "<" else "[") + f"{a}, {b}" + (")" if r == "<" else "]")
            rev = {"<": ">", "\\le": "\\ge"}
            same = [gold, f"{a}{l}{v}{r}{b}" if l == r == "<" else f"{a}{l} {v}{r}{b}", iv,
                    f"{b} {rev[r]} {v} {rev[l]} {a}"]
            other_l = "\\le" if l == "<" else "<"
            wrong = [f"{a} {other_l} {v} {r} {b}", f"{a} {l} {v} {r} {b + 1}",
                     ("[" if l == "<" else "(") + f"{a}, {b}" + (")" if r == "<" else "]"), f"{v} {r} {b}"]
        else:
            gold = f"{v} < {a} \\text{{ or }} {v} > {b}"
            same = [gold, f"(-\\infty, {a}) \\cup ({b}, \\infty)", f"{v}<{a} \\text{{ or }} {v}>{b}",
                    f"{v} > {b} \\text{{ or }} {v} < {a}"]
            wrong = [f"{a} < {v} < {b}", f"{v} \\le {a} \\text{{ or }} {v} \\ge {b}", f"{v} < {a}",
                     f"(-\\infty, {a}] \\cup ({b}, \\infty)"]
        emit("inequality", gold, pick(same, 3), pick(wrong, 3))


def matrix(rows, env="pmatrix", sp=" "):
    body = f"{sp}\\\\{sp}".join(f"{sp}&{sp}".join(map(str, r)) for r in rows)
    return f"\\begin{{{env}}}{sp}{body}{sp}\\end{{{env}}}"


def matrices():
    for _ in range(21):
        r, c = R.choice([(2, 2), (2, 2), (3, 3), (2, 1), (3, 1), (2, 3)])
        m = [[R.randint(-9, 12) for _ in range(c)] for _ in range(r)]
        gold = matrix(m, R.choice(["pmatrix", "pmatrix", "bmatrix"]))
        same = [gold, matrix(m, "pmatrix", ""), matrix(m, "bmatrix"), matrix(m, "pmatrix", "  ")]
        m2 = [list(row) for row in m]
        m2[R.randrange(r)][R.randrange(c)] += 1
        wrong = [matrix(m2), matrix([[-x for x in row] for row in m])]  # m is not all zero
        if r == c:
            t = [list(col) for col in zip(*m)]
            if t != m:
                wrong.append(matrix(t))
        if c == 1:
            wrong.append(matrix([list(reversed([row[0] for row in m]))]).replace("&", "\\\\") if len(set(row[0] for row in m)) == r else matrix(m2))
            fr = [[f"\\frac{{{2 * x}}}{{2}}" for x in row] for row in m]
            same.append(matrix(fr))
        if not any(x for row in m for x in row):
            continue
        if not any(row == [0] * c for row in m):
            wrong.append(matrix([[2 * x for x in row] for row in m]))
        emit("matrix", gold, pick(same, 3), pick(wrong, 3))


def lin(m, v, c, m2=None):
    """m v + c as one writes it (m2: c first, then m2 v)."""
    def term(k, first):
        t = v if abs(k) == 1 else f"{abs(k)}{v}"
        if first:
            return ("-" if k < 0 else "") + t
        return ("- " if k < 0 else "+ ") + t
    if m2 is not None:
        return f"{c} " + term(m2, False)
    if c == 0:
        return term(m, True)
    return term(m, True) + (f" + {c}" if c > 0 else f" - {-c}")


def equations():
    for _ in range(30):
        m, c = R.randint(-6, 6), R.randint(-9, 9)
        if m == 0 or c == 0:
            continue
        kind = R.randrange(3)
        if kind == 0:  # a line
            gold = f"y = {lin(m, 'x', c)}"
            same = [gold, gold.replace(" ", ""), f"y = {lin(0, 'x', c, m)}", f"y={lin(m, 'x', c)}".replace(" ", ""),
                    f"{lin(m, 'x', 0)} - y {c:+d} = 0".replace("+", "+ ").replace("-", "- ").replace("- y - ", "- y - ")
                    if abs(m) != 1 else f"y {-c:+d} = {lin(m, 'x', 0)}"]
            wrong = [f"y = {lin(m, 'x', -c)}", f"y = {lin(-m, 'x', c)}"]
            if m != c:
                wrong.append(f"y = {lin(c, 'x', m)}")
            if m != -1:
                wrong.append(f"x = {lin(m, 'y', c)}")
        elif kind == 1:  # a circle
            a, b, r = R.randint(-5, 5), R.randint(-5, 5), R.randint(2, 7)
            if a == 0 or b == 0:
                continue
            xa = f"(x {'-' if a > 0 else '+'} {abs(a)})^2"
            yb = f"(y {'-' if b > 0 else '+'} {abs(b)})^2"
            gold = f"{xa} + {yb} = {r * r}"
            k = a * a + b * b - r * r
            exp = f"x^2 + y^2 {'-' if a > 0 else '+'} {2 * abs(a)}x {'-' if b > 0 else '+'} {2 * abs(b)}y {'+' if k >= 0 else '-'} {abs(k)} = 0"
            same = [gold, f"{yb} + {xa} = {r * r}", f"{xa}+{yb}={r}^2", exp]
            xw = f"(x {'+' if a > 0 else '-'} {abs(a)})^2"
            wrong = [f"{xw} + {yb} = {r * r}", f"{xa} + {yb} = {r}", f"{xa} + {yb} = {(r + 1) ** 2}",
                     f"{xa} - {yb} = {r * r}"]
        else:  # a value named by its variable
            v = R.choice("xyntk")
            n = R.randint(-30, 30)
            gold = R.choice([f"{v} = {n}", f"{v}={n}", f"{n}"])
            same = [f"{v} = {n}", f"{n}", f"{v}={n}"]
            wrong = [f"{v} = {n + 1}", f"{v} = {-n}" if n else f"{v} = 1", f"{n - 1}"]
        emit("equation", gold, pick(same, 3), pick(wrong, 3))


def words():
    pairs = [("\\text{odd}", ["\\text{odd}", "odd", "\\textbf{odd}", "\\text{ odd }"], ["\\text{even}", "even"]),
             ("\\text{even}", ["even", "\\text{even}", "\\mathrm{even}"], ["odd", "\\text{odd}"]),
             ("\\text{Yes}", ["\\text{Yes}", "\\textbf{Yes}", "Yes"], ["\\text{No}", "No"]),
             ("\\text{No}", ["\\text{No}", "No", "\\textbf{No}"], ["\\text{Yes}", "Yes"]),
             ("\\text{Tuesday}", ["\\text{Tuesday}", "Tuesday"], ["\\text{Monday}", "\\text{Thursday}"]),
             ("\\text{Alice}", ["\\text{Alice}", "Alice", "\\text{ Alice}"], ["\\text{Bob}", "Bob"]),
             ("\\text{east}", ["\\text{east}", "east"], ["\\text{west}", "west"])]
    for gold, same, wrong in pairs:
        emit("word", gold, same, wrong)


def nonanswers():
    """Replies whose box holds no answer, or a broken one: never right."""
    golds = ["42", "\\frac{1}{2}", "(1, 2)", "x > 3", "2\\sqrt{3}", "\\{1, 2\\}", "C"]
    bad = ["", " ", "\\frac{1}{", "(1,2", "1+", "\\sqrt{}", "x^", "???", "\\text{I don't know}",
           "\\text{no solution}", "\\text{undefined}", "...", "\\frac{}{2}", "2 \\times", "[1, 2",
           "\\begin{pmatrix} 1 & 2", "=", "x >", "\\pm", "1, , 2"]
    for i, b in enumerate(bad):
        emit("non-answer", golds[i % len(golds)], [], [b])


def dataset_forms():
    """Golds as NuminaMath, AMC and olympiad sets write them, against the
    short forms replies use; several are beyond a rule-based judge (a
    choice with its value, a repeating decimal), and are here so that the
    agreement figure counts them."""
    emit("dataset form", "\\textbf{(C)}\\ 12", ["\\textbf{(C)}\\ 12", "\\textbf{(C)}", "C", "12"], ["\\textbf{(B)}\\ 10", "B", "10"])
    emit("dataset form", "\\textbf{(B) }\\frac{1}{3}", ["\\textbf{(B) }\\frac{1}{3}", "B", "\\frac{1}{3}"], ["A", "\\frac{1}{2}"])
    emit("dataset form", "C", ["\\text{(C) } 12", "C"], ["\\text{(D) } 12", "D"])
    emit("dataset form", "x \\in (1, 2)", ["(1, 2)", "x \\in (1,2)", "1 < x < 2"], ["[1, 2]", "x \\in [1, 2)"])
    emit("dataset form", "x \\in [-1, 3]", ["[-1, 3]", "-1 \\le x \\le 3"], ["(-1, 3)", "x \\in [-1, 3)"])
    emit("dataset form", "\\binom{6}{2}", ["15", "\\binom{6}{2}", "\\dbinom{6}{2}"], ["30", "\\binom{6}{3}"])
    emit("dataset form", "10", ["\\binom{5}{2}", "\\dbinom{5}{3}"], ["\\binom{5}{1}", "20"])
    emit("dataset form", "f(x) = 2x + 1", ["2x + 1", "f(x) = 1 + 2x", "f(x)=2x+1"], ["2x - 1", "f(x) = 2x"])
    emit("dataset form", "(x, y) = (3, -2)", ["(3, -2)", "(x,y)=(3,-2)"], ["(-2, 3)", "(3, 2)"])
    emit("dataset form", "\\frac{1}{3}", ["0.\\overline{3}", "\\frac{1}{3}"], ["0.3", "0.33"])
    emit("dataset form", "\\sqrt[3]{2}", ["2^{1/3}", "2^{\\frac{1}{3}}", "\\sqrt[3]{2}"], ["\\sqrt{2}", "\\frac{2}{3}", "2^{3}"])
    emit("dataset form", "\\log_2 5", ["\\log_{2} 5", "\\log_2{5}", "\\frac{\\ln 5}{\\ln 2}"], ["\\log_5 2", "\\log 5", "2.32"])
    emit("dataset form", "5!", ["120", "5!"], ["24", "5"])
    emit("dataset form", "\\$1,250", ["1250", "\\$1250", "1,250 \\text{ dollars}", "\\$1,250.00"], ["\\$125", "1,205"])
    emit("dataset form", "\\frac{n(n+1)}{2}", ["\\frac{n^2+n}{2}", "\\frac{1}{2}n(n+1)", "n(n+1)/2"], ["n(n+1)", "\\frac{n(n-1)}{2}"])
    emit("dataset form", "2^{n} - 1", ["2^n - 1", "-1 + 2^n"], ["2^{n-1}", "2^n + 1", "2n - 1"])
    emit("dataset form", "\\{(1, 2), (3, 4)\\}", ["(3, 4), (1, 2)", "\\{(3,4),(1,2)\\}", "(1, 2), (3, 4)"], ["(1, 2)", "(2, 1), (4, 3)"])
    emit("dataset form", "\\text{odd}", ["\\text{odd}", "odd"], ["\\text{even}"])
    emit("dataset form", "\\frac{\\sqrt{2}}{2}", ["\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt2}2", "\\sqrt{2}/2", "\\frac{1}{2}\\sqrt{2}"], ["\\sqrt{2}", "\\frac{1}{2}", "0.7"])
    emit("dataset form", "1.5 \\text{ hours}", ["1.5", "1.5\\text{ hours}", "\\frac{3}{2} \\text{ hours}"], ["1.5 \\text{ minutes}", "90 \\text{ hours}"])
    emit("dataset form", "90 \\text{ minutes}", ["90", "90 \\text{ minutes}"], ["90 \\text{ hours}", "1.5"])
    emit("dataset form", "12 \\text{ cm}^2", ["12", "12 \\text{ cm}^2", "12\\text{cm}^2"], ["12 \\text{ m}^2", "144"])


def pitfalls():
    """Forms judges have stumbled on: digit groups set with a thin space,
    a number run into the next, a product that looks like a list, choices
    with their value, text joining two answers."""
    emit("pitfall", "1000", ["1000", "1{,}000"], ["0", "1", "10000"])
    emit("pitfall", "0", ["0"], ["1\\,000", "1\\;000", "1 000"])
    emit("pitfall", "6", ["6", "2 \\cdot 3", "2 \\times 3"], ["2 \\text{ or } 3", "2 \\text{ and } 3", "2, 3", "2 3"])
    emit("pitfall", "2, 3", ["2 \\text{ and } 3", "3 \\text{ and } 2", "2 \\text{ or } 3"], ["6", "23"])
    emit("pitfall", "4\\sqrt{2}", ["4\\sqrt{2}", "\\sqrt{32}"], ["4", "\\sqrt{2}", "4\\sqrt{3}"])
    emit("pitfall", "4", ["4"], ["4\\sqrt{2}", "4\\sqrt(2)", "2\\sqrt{2}"])
    emit("pitfall", "3\\pi", ["3\\pi"], ["3", "\\pi", "9.42"])
    emit("pitfall", "12", ["12"], ["\\text{(C)}\\ 13", "1 2"])
    emit("pitfall", "\\frac{1}{2}", ["\\frac12", "0.5"], ["\\frac{1}{2}x", "\\frac{1}{2}\\pi", "12", "\\frac{2}{1}"])
    emit("pitfall", "x^2", ["x^2", "x \\cdot x"], ["2x", "x^3", "x"])
    # past 2^63: exact integers, not doubles that agree
    emit("pitfall", "12345678901234567890", ["12345678901234567890", "12,345,678,901,234,567,890"],
         ["12345678901234567891", "12345678901234567000"])
    emit("pitfall", "2^{64}", ["2^{64}"], ["18446744073709551615", "2^{63}"])
    emit("pitfall", "50\\%", ["50\\%", "0.5", "50"], ["0.5\\%", "5\\%"])
    # a decimal is rounded only where it stands alone (0.333333 is 1/3)
    emit("pitfall", "3.7 \\times 10^{-5}", ["0.000037", "3.70 \\times 10^{-5}"], ["3.67 \\times 10^{-5}", "0.0000367"])
    # a reply hedging between two choices
    emit("pitfall", "C", ["\\text{(C)}"], ["\\text{(C) or (D)}", "C, D"])
    emit("pitfall", "\\textbf{(C)}\\ 12", ["\\text{(C) } 12"], ["\\text{(C) or (D)}", "\\text{(C) } 12 \\text{ or (D) } 14"])


def main():
    for gen in (integers, decimals, fractions, mixed, percents, scientific, degrees, units, radicals, pis,
                polys, intervals, tuples, sets, letters, plusminus, inequalities, matrices, equations,
                words, nonanswers, dataset_forms, pitfalls):
        gen()
    for p in OUT:
        sys.stdout.write(json.dumps(p) + "\n")


if __name__ == "__main__":
    main()
