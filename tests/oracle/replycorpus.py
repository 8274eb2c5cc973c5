#!/usr/bin/env python3
"""Write the reply corpus: whole model replies with their reference answer,
each with the verdict a careful human grader gives.

    python3 tests/oracle/replycorpus.py > tests/data/judge/replies.jsonl

One JSON object a line: {"gold", "content", "reasoning", "truth", "form",
"style"}. gold is the `answer` field of a record (a NuminaMath-style
reference, the content of the reference's \\boxed{}); content and reasoning
are what ds-teacher writes into `teacher` (the reply after the chain of
thought, and the chain itself); truth is true when a human grader marks the
reply's final answer right against gold; form is the family of the answer,
style the way the reply states it.

Two sources. The answer pairs of tests/oracle/mathcorpus.py (every form of
tests/data/judge/corpus.jsonl: integers to matrices), each written into a
reply in one of the styles below. And the forms that only whole replies
have, or that the pair corpus lacks: decimal commas against thousands
separators against pairs, `x = 3` against `3`, `a=1, b=2`, letters of
multiple-choice answers in prose, several boxes, nested boxes, \\fbox,
a box on an intermediate result, trailing punctuation, a leading +,
"percent", \\emptyset, \\infty.

The styles are those DeepSeek-R1 and other models write: a chain of
thought in `reasoning` and, in `content`, prose ending in a box
(**Final Answer** and a display box, or an inline box), "The answer is",
"**Answer:**", Minerva's "Final Answer: The final answer is $x$. I hope it
is correct.", "The final answer is", an answer that is only the last LaTeX
expression or the last number of the reply, boxes in boxes, \\fbox, a box
on a first result followed by the final one, and a reply cut short (empty
content, the answer in the chain of thought). The prose before the answer
holds other numbers and LaTeX, as real replies do.

Deterministic: a fixed seed and no other input (t-judge-corpus checks that
a rerun writes the same file). Math-Verify's verdicts are in
replies-mathverify.jsonl (tests/oracle/mathverify_replies.py).
"""
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mathcorpus  # noqa: E402

R = random.Random(20250219)
OUT = []

# ---- the chain of thought and the prose around the answer -------------------

THINK = [
    "Okay, so I need to figure out {q}. Let me start by writing down what I know.",
    "First, let me recall the formula. If $a = {a}$ and $b = {b}$, then $a + b = {s}$.",
    "Wait, let me double-check that. ${a} \\times {b} = {p}$, so that part is fine.",
    "Hmm, maybe I should try a different approach. Let me set $x = {a}$ and see what happens.",
    "So the first case gives ${s}$, but I am not sure that is what the problem asks.",
    "Let me verify with a small example: for $n = {b}$ we get ${p}$, which matches.",
    "Alternatively, I could factor it: $({a} + {b})^2 = {a2}$. That seems off, so let me redo it.",
    "That means the total is {s} units, but the question asks for something else.",
    "Let me compute step by step. {a} plus {b} is {s}, and {a} times {b} is {p}.",
    "I think that's right, but let me check once more to be sure.",
]

SUMMARY = [
    "To solve the problem, we first note that $a = {a}$ and $b = {b}$, so $a + b = {s}$.",
    "We start from the given conditions. Substituting $x = {a}$ gives ${p}$ for the product.",
    "Let the unknown be $x$. From the first equation, $x + {b} = {s}$, and from the second, ${a}x = {p}$.",
    "Counting the cases separately gives {a} and {b} possibilities, {s} in all before adjusting.",
    "1. Compute the sum: ${a} + {b} = {s}$.\n2. Compute the product: ${a} \\cdot {b} = {p}$.",
    "Since $\\frac{{{p}}}{{{a}}} = {b}$, the remaining steps follow directly.",
]


def nums():
    a, b = R.randint(2, 30), R.randint(2, 30)
    return {"a": a, "b": b, "s": a + b, "p": a * b, "a2": (a + b) ** 2,
            "q": R.choice(["the value of the expression", "how many ways there are", "the area of the region",
                           "the sum of all solutions", "the probability"])}


def think():
    k = R.randint(3, 7)
    return "\n\n".join(R.choice(THINK).format(**nums()) for _ in range(k))


def summary():
    k = R.randint(1, 3)
    return "\n\n".join(R.choice(SUMMARY).format(**nums()) for _ in range(k))


def plain(p):
    """Whether p can be written without $...$: a plain number."""
    return re.fullmatch(r"-?\d+(?:\.\d+)?", p) is not None


def env(p):
    """p as inline LaTeX, in one of the delimiters models use."""
    return R.choice(["${}$", "${}$", "${}$", "\\({}\\)"]).format(p)


# Each style: (name, weight, needs a plain number, text from the answer).
# The text is content; "cut short" puts the answer in the reasoning.
def s_final_display(p):
    return f"{summary()}\n\nThus, the final result follows.\n\n**Final Answer**\n\\[\n\\boxed{{{p}}}\n\\]"


def s_final_inline(p):
    return f"{summary()}\n\nTherefore, the answer is $\\boxed{{{p}}}$."


def s_boxed_alone(p):
    return f"\\boxed{{{p}}}"


def s_boxed_paren(p):
    return f"{summary()}\n\nSo we conclude \\(\\boxed{{{p}}}\\)."


def s_answer_is(p):
    a = p if plain(p) and R.random() < 0.6 else env(p)
    return f"{summary()}\n\nThe answer is {a}."


def s_answer_colon(p):
    a = p if plain(p) and R.random() < 0.5 else env(p)
    return f"{summary()}\n\n**Answer:** {a}"


def s_minerva(p):
    return f"{summary()}\n\nFinal Answer: The final answer is ${p}$. I hope it is correct."


def s_final_answer_is(p):
    return f"{summary()}\n\nThe final answer is ${p}$."


def s_last_latex(p):
    lead = R.choice(["Putting everything together, we get", "Hence the value is", "This simplifies to",
                     "So the required quantity equals"])
    if R.random() < 0.4:
        return f"{summary()}\n\n{lead}\n\\[\n{p}\n\\]"
    return f"{summary()}\n\n{lead} {env(p)}."


def s_last_number(p):
    lead = R.choice(["So in total there are", "Hence the result is", "That leaves", "Adding them up gives"])
    return f"{summary()}\n\n{lead} {p}."


def s_nested(p):
    return f"{summary()}\n\nThe answer is $\\boxed{{\\boxed{{{p}}}}}$."


def s_fbox(p):
    if R.random() < 0.5:
        return f"{summary()}\n\nSo the result is $\\fbox{{{p}}}$."
    return f"{summary()}\n\nSo the result is \\fbox{{{p}}}."


def s_intermediate(p):
    w = R.choice(["12", "\\frac{1}{2}", "x = 4", "7", "3\\sqrt{2}"])
    return (f"For the first step we get $\\boxed{{{w}}}$ as the value of the auxiliary quantity.\n\n"
            f"{summary()}\n\nNow we use this to finish the problem, which gives the final result\n"
            f"\\[\n\\boxed{{{p}}}\n\\]")


STYLES = [
    ("final display box", 30, False, s_final_display),
    ("final inline box", 14, False, s_final_inline),
    ("box alone", 6, False, s_boxed_alone),
    ("box in \\(\\)", 5, False, s_boxed_paren),
    ("answer is", 8, False, s_answer_is),
    ("answer colon", 6, False, s_answer_colon),
    ("minerva", 6, False, s_minerva),
    ("final answer is", 4, False, s_final_answer_is),
    ("last latex", 7, False, s_last_latex),
    ("last number", 6, True, s_last_number),
    ("nested box", 2, False, s_nested),
    ("fbox", 1, False, s_fbox),
    ("intermediate box", 4, False, s_intermediate),
    ("cut short", 2, False, None),
]


def pick_style(p, allow=None):
    cands = [s for s in STYLES if (not s[2] or plain(p)) and (allow is None or s[0] in allow)]
    total = sum(s[1] for s in cands)
    x = R.uniform(0, total)
    for s in cands:
        x -= s[1]
        if x <= 0:
            return s
    return cands[-1]


def reply(form, gold, p, truth, allow=None, style=None):
    """A record of gold and a reply whose final answer is p."""
    name, _, _, fn = style or pick_style(p, allow)
    if fn is None:  # cut short: the answer only in the chain of thought
        reasoning = think() + f"\n\nSo the answer should be $\\boxed{{{p}}}$."
        content = ""
    else:
        reasoning = think()
        content = fn(p)
    OUT.append({"gold": gold, "content": content, "reasoning": reasoning, "truth": truth,
                "form": form, "style": name})


def raw(form, style, gold, content, truth):
    """A record whose reply is written out whole."""
    OUT.append({"gold": gold, "content": content, "reasoning": think(), "truth": truth,
                "form": form, "style": style})


# ---- the answer pairs, as replies ---------------------------------------------


def from_pairs():
    for gen in (mathcorpus.integers, mathcorpus.decimals, mathcorpus.fractions, mathcorpus.mixed,
                mathcorpus.percents, mathcorpus.scientific, mathcorpus.degrees, mathcorpus.units,
                mathcorpus.radicals, mathcorpus.pis, mathcorpus.polys, mathcorpus.intervals,
                mathcorpus.tuples, mathcorpus.sets, mathcorpus.letters, mathcorpus.plusminus,
                mathcorpus.inequalities, mathcorpus.matrices, mathcorpus.equations, mathcorpus.words,
                mathcorpus.dataset_forms, mathcorpus.pitfalls):
        gen()
    pairs = mathcorpus.OUT
    # two in three pairs, each family kept in proportion
    for p in pairs:
        if R.random() < 0.67:
            reply(p["form"], p["gold"], p["pred"], p["truth"])


# ---- forms only whole replies have --------------------------------------------


def numbers():
    # decimal commas: unambiguous where the group after the comma is not
    # three digits, or where {,} is written
    for _ in range(8):
        i, f = R.randint(0, 99), R.choice([R.randint(1, 9), R.randint(11, 99)])
        if f % 10 == 0:
            f += 1
        d = f"{i}.{f}"
        c = f"{i},{f}"
        raw("decimal comma", "european", d, f"Die Rechnung ergibt ${i}{{,}}{f}$.\n\nDie Antwort ist $\\boxed{{{i}{{,}}{f}}}$.", True)
        raw("decimal comma", "european", d, f"En additionnant, on trouve la valeur.\n\nLa réponse est {c}.", True)
        raw("decimal comma", "european", d, f"Por lo tanto, la respuesta es $\\boxed{{{i}{{,}}{f + 1}}}$.", False)
        raw("decimal comma", "european", d, f"Ответ: $\\boxed{{{i + 1}{{,}}{f}}}$", False)
    # thousands separators, against pairs
    for _ in range(8):
        a, b = R.randint(1, 99), R.randint(100, 999)
        n = a * 1000 + b
        g = str(n) if R.random() < 0.7 else f"{a},{b}"
        for t in (f"{a},{b}", f"{a}{{,}}{b}", f"{a}\\,{b}", str(n)):
            reply("thousands", g, t, True, allow={"final display box", "final inline box", "answer is"})
        raw("thousands", "answer is", g, f"{summary()}\n\nSo the answer is {a},{b}.", True)
        reply("thousands", g, f"({a},{b})", False, allow={"final display box", "final inline box"})
        reply("thousands", g, f"{a},{b + 1}", False, allow={"final display box", "answer is"})
        reply("thousands", f"({a},{b})", str(n), False, allow={"final display box", "final inline box"})
        reply("thousands", f"({a},{b})", f"({a}, {b})", True, allow={"final display box", "final inline box"})
        reply("thousands", f"({a},{b})", f"\\left({a},{b}\\right)", True, allow={"final display box"})
    # trailing punctuation and a leading +
    for _ in range(8):
        n = R.randint(1, 999)
        raw("punctuation", "box", str(n), f"{summary()}\n\nSo the answer is $\\boxed{{{n}}}$.", True)
        raw("punctuation", "box", str(n), f"{summary()}\n\n\\boxed{{{n}.}}", True)
        raw("punctuation", "answer is", str(n), f"{summary()}\n\nThe answer is {n}!", True)
        raw("punctuation", "answer is", str(n), f"{summary()}\n\nThe answer is **{n}**.", True)
        raw("punctuation", "box", str(n), f"{summary()}\n\n\\[\\boxed{{+{n}}}\\]", True)
        raw("punctuation", "box", str(n), f"{summary()}\n\n\\[\\boxed{{{n + 1}.}}\\]", False)
        raw("punctuation", "answer is", str(n), f"{summary()}\n\nThe answer is {n}0.", False)
    # percent in words and signs, only where the gold says percent
    for _ in range(12):
        k = R.randint(2, 99)
        g = f"{k}\\%"
        reply("percent", g, f"{k}\\%", True)
        raw("percent", "answer is", g, f"{summary()}\n\nThe answer is {k} percent.", True)
        raw("percent", "answer is", g, f"{summary()}\n\nThe answer is {k}%.", True)
        reply("percent", g, f"\\frac{{{k}}}{{100}}", True, allow={"final display box", "final inline box"})
        reply("percent", g, f"{k + 1}\\%", False)
        raw("percent", "answer is", g, f"{summary()}\n\nThe answer is {k + 1} percent.", False)
        reply("percent", str(k), f"\\frac{{{k}}}{{100}}", False, allow={"final display box", "final inline box"})


def equations():
    for _ in range(20):
        v = R.choice("xyzabnkt")
        n = R.randint(-20, 40)
        reply("assignment", f"{v} = {n}", str(n), True)
        reply("assignment", f"{v} = {n}", f"{v}={n}", True)
        reply("assignment", str(n), f"{v} = {n}", True)
        reply("assignment", f"{v} = {n}", str(n + 1), False)
        reply("assignment", str(n), f"{v} = {n + 2}", False)
    for _ in range(16):
        a, b = R.randint(-9, 9), R.randint(-9, 9)
        if a == b:
            b += 1
        g = f"a={a}, b={b}"
        reply("assignment", g, f"a = {a}, b = {b}", True)
        reply("assignment", g, f"b={b}, a={a}", True)
        reply("assignment", g, f"a = {a}, \\ b = {b}", True, allow={"final display box", "final inline box"})
        reply("assignment", g, f"a = {b}, b = {a}", False)
        reply("assignment", g, f"a = {a}, b = {b + 1}", False)
        reply("assignment", g, f"a = {a}", False, allow={"final display box", "final inline box"})


def choices():
    for _ in range(5):
        L = R.choice("ABCDE")
        W = R.choice([c for c in "ABCDE" if c != L])
        v = R.randint(2, 99)
        for g in (f"\\text{{({L})}}", L, f"({L}) {v}", f"\\textbf{{({L})}}\\ {v}"):
            raw("choice", "box", g, f"{summary()}\n\nThe correct option is $\\boxed{{{L}}}$.", True)
            raw("choice", "box", g, f"{summary()}\n\n**Final Answer**\n\\[\n\\boxed{{\\text{{({L})}}}}\n\\]", True)
            raw("choice", "box", g, f"{summary()}\n\n\\[\\boxed{{{W}}}\\]", False)
        raw("choice", "answer is", f"\\text{{({L})}}", f"{summary()}\n\nThe answer is ({L}).", True)
        raw("choice", "answer is", L, f"{summary()}\n\n**Answer:** ({W})", False)
        raw("choice", "box", f"({L}) {v}", f"{summary()}\n\n\\[\\boxed{{{v}}}\\]", True)
        raw("choice", "box", f"({L}) {v}", f"{summary()}\n\n\\[\\boxed{{{v + 1}}}\\]", False)


def boxes():
    for _ in range(9):
        a = R.randint(-9, 20)
        b = a + R.randint(1, 9)
        for g in (f"{a}, {b}", f"\\{{{a}, {b}\\}}"):
            raw("several boxes", "two boxes", g, f"{summary()}\n\nThe solutions are $\\boxed{{{a}}}$ and $\\boxed{{{b}}}$.", True)
            raw("several boxes", "two boxes", g, f"{summary()}\n\n\\[\\boxed{{{b}}}, \\boxed{{{a}}}\\]", True)
            raw("several boxes", "two boxes", g, f"{summary()}\n\n$\\boxed{{{a}}}$ and $\\boxed{{{b + 1}}}$", False)
        raw("several boxes", "two boxes", str(b), f"{summary()}\n\nThe solutions are $\\boxed{{{a}}}$ and $\\boxed{{{b}}}$.", False)
        raw("several boxes", "nested box", str(a), f"{summary()}\n\nThus $\\boxed{{\\boxed{{{a}}}}}$.", True)
        raw("several boxes", "nested box", str(a), f"{summary()}\n\nThus $\\boxed{{\\boxed{{{a + 1}}}}}$.", False)
        raw("several boxes", "fbox", str(b), f"{summary()}\n\n\\fbox{{{b}}}", True)
        raw("several boxes", "fbox", str(b), f"{summary()}\n\n\\fbox{{{b + 2}}}", False)
        # a box on a first result, then the final answer boxed
        raw("several boxes", "intermediate box", str(b),
            f"The first part gives $\\boxed{{{a}}}$, which we will need again below when we finish.\n\n"
            f"{summary()}\n\nFinally, substituting back, the required value is\n\\[\n\\boxed{{{b}}}\n\\]", True)
        raw("several boxes", "intermediate box", str(a),
            f"The first part gives $\\boxed{{{a}}}$, which we will need again below when we finish.\n\n"
            f"{summary()}\n\nFinally, substituting back, the required value is\n\\[\n\\boxed{{{b}}}\n\\]", False)


def specials():
    for g, same, wrong in [
        ("\\emptyset", ["\\emptyset", "\\varnothing", "\\{\\}"], ["\\{0\\}", "0"]),
        ("\\infty", ["\\infty", "+\\infty"], ["-\\infty", "0"]),
        ("-\\infty", ["-\\infty"], ["\\infty"]),
        ("\\sqrt{2}", ["\\sqrt2", "\\sqrt{2}", "2^{1/2}"], ["2", "\\sqrt3", "\\frac{\\sqrt2}{2}"]),
        ("2\\pi", ["2\\pi", "2 \\pi", "\\pi \\cdot 2"], ["\\pi", "6.28", "2"]),
        ("\\frac{\\pi}{2}", ["\\frac{\\pi}{2}", "\\pi/2", "\\dfrac{\\pi}{2}", "\\frac{1}{2}\\pi"], ["\\pi", "\\frac{\\pi}{3}", "90"]),
        ("\\frac{3}{4}", ["\\tfrac{3}{4}", "\\dfrac34", "0.75", "\\left(\\frac{3}{4}\\right)"], ["\\frac{4}{3}", "0.7"]),
        ("2\\frac{1}{3}", ["\\frac{7}{3}", "2\\frac13", "7/3"], ["\\frac{2}{3}", "2.33", "\\frac{5}{3}"]),
        ("1.5 \\times 10^{3}", ["1500", "1.5 \\cdot 10^3", "1,500"], ["150", "1.5 \\times 10^{4}"]),
        ("5\\text{ cm}", ["5", "5\\text{ cm}", "5 \\, \\text{cm}", "5\\ \\text{cm}"], ["6", "5 \\text{ m}"]),
        ("30^\\circ", ["30", "30^{\\circ}", "30^\\circ", "30\\!^\\circ"], ["60^\\circ", "150"]),
    ]:
        for p in same:
            for _ in range(2):
                reply("special", g, p, True, allow={"final display box", "final inline box", "answer is", "minerva"})
        for p in wrong:
            reply("special", g, p, False, allow={"final display box", "final inline box", "answer is"})


def nonanswers():
    for text in ["I could not finish the computation in time.", "Let me reconsider the problem from the start.",
                 "The problem is ill-posed as stated.", "We need more information to decide.",
                 "This requires a careful case analysis, which I leave aside."]:
        for g in ("12", "\\frac{1}{2}", "x = 3"):
            raw("non-answer", "prose", g, text, False)


def main():
    from_pairs()
    numbers()
    equations()
    choices()
    boxes()
    specials()
    nonanswers()
    for p in OUT:
        sys.stdout.write(json.dumps(p, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
