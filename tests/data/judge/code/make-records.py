#!/usr/bin/env python3
"""Write the records t-judge-code runs through ds-judge: records.jsonl
(ordinary programs: correct, wrong, broken, call-based, APPS's tests as a
string, float output) and hostile.jsonl (programs that try to hurt the
machine: each must be stopped and reported). The programs and the tests are
written by hand in the APPS / TACO layout. Deterministic: rerun it and the
files do not change."""
import json


def fence(code, lang="python"):
    return f"Here is my solution.\n\n```{lang}\n{code}\n```\n"


def rec(out, id, content, tests, source="apps", reasoning="r"):
    r = {"id": id, "source": source, "domain": "code", "problem": "p"}
    if tests is not None:
        r["tests"] = tests
    r["teacher"] = {"reasoning": reasoning, "content": content, "sample": 0}
    out.append(r)


SUM = {"inputs": ["1 2\n", "10 20\n", "-5 5\n"], "outputs": ["3\n", "30\n", "0\n"]}
ADD = "a, b = map(int, input().split())\nprint(a + b)"

ordinary = []
rec(ordinary, "stdin/ok", fence(ADD), SUM)
# a draft first, then the final block; ```py counts as Python
rec(ordinary, "stdin/last-block",
    "```python\nprint('draft')\n```\nBetter:\n"
    + fence("import sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b)", "py"), SUM)
# a C++ block after the Python one is not the answer
rec(ordinary, "stdin/other-language", fence(ADD) + "In C++:\n```cpp\nint main() {}\n```\n", SUM)
# whitespace around lines and blank lines do not matter
rec(ordinary, "stdin/whitespace", fence("a, b = map(int, input().split())\nprint()\nprint('  ', a + b, '  ')\nprint()"), SUM)
rec(ordinary, "stdin/wrong", fence("a, b = map(int, input().split())\nprint(a - b)"), SUM)
rec(ordinary, "stdin/wrong-later",
    fence("a, b = map(int, input().split())\nprint(a + b if a > 0 else 1)"), SUM)
rec(ordinary, "stdin/syntax", fence("a, b = map(int, input().split()\nprint(a + b)"), SUM)
rec(ordinary, "stdin/runtime", fence("a, b = map(int, input().split())\nprint(a // (b - 2))"), SUM)
rec(ordinary, "stdin/none", "I would use a loop, but I have no code.", SUM)
rec(ordinary, "stdin/no-tests", fence("print(1)"), None)
rec(ordinary, "stdin/bad-tests", fence("print(1)"), {"inputs": ["1"], "outputs": []})
rec(ordinary, "stdin/reasoning-only", "", SUM,
    reasoning="Let me write it:\n" + fence(ADD))
# APPS stores input_output as a JSON string; inputs may be lists of lines
rec(ordinary, "stdin/string-tests", fence("n = int(input())\nfor i in range(n):\n    print(i * i)"),
    json.dumps({"inputs": ["3\n", ["2"]], "outputs": ["0\n1\n4\n", ["0", "1"]]}))
# floats: within np.allclose's tolerance, not beyond; integers exactly
rec(ordinary, "stdin/float", fence("print(1 / 3, 2.0)"), {"inputs": [""], "outputs": ["0.333333 2"]})
rec(ordinary, "stdin/float-far", fence("print(1 / 3)"), {"inputs": [""], "outputs": ["0.3333"]})
rec(ordinary, "stdin/integer-exact", fence("print(1000001)"), {"inputs": [""], "outputs": ["1000000"]})
rec(ordinary, "call/function", fence("def add(a, b):\n    return a + b"),
    {"fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [[3], 7]})
rec(ordinary, "call/solution", fence(
    "class Solution:\n"
    "    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
    "        seen = {}\n"
    "        for i, x in enumerate(nums):\n"
    "            if target - x in seen:\n"
    "                return (seen[target - x], i)\n"
    "            seen[x] = i"),
    {"fn_name": "twoSum", "inputs": [[[2, 7, 11, 15], 9], [[3, 2, 4], 6]], "outputs": [[[0, 1]], [[1, 2]]]},
    source="taco")
rec(ordinary, "call/prints", fence("def area(r):\n    print('computing')\n    return 3.14159265 * r * r"),
    {"fn_name": "area", "inputs": [[1], [2]], "outputs": [[3.1415927], [12.566371]]}, source="taco")
rec(ordinary, "call/wrong", fence("def add(a, b):\n    return a * b"),
    {"fn_name": "add", "inputs": [[2, 2], [3, 4]], "outputs": [[4], [7]]})
rec(ordinary, "call/syntax", fence("def add(a, b)\n    return a + b"),
    {"fn_name": "add", "inputs": [[1, 2]], "outputs": [[3]]})
rec(ordinary, "call/missing", fence("def plus(a, b):\n    return a + b"),
    {"fn_name": "add", "inputs": [[1, 2]], "outputs": [[3]]})
rec(ordinary, "call/raises", fence("def add(a, b):\n    return a + b[0]"),
    {"fn_name": "add", "inputs": [[1, 2]], "outputs": [[3]]})

hostile = []
one = {"inputs": [""], "outputs": ["ok"]}
rec(hostile, "evil/loop", fence("while True:\n    pass"), one)
rec(hostile, "evil/sleep", fence("import time\ntime.sleep(60)"), one)
rec(hostile, "evil/fork-bomb", fence(
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"), one)
rec(hostile, "evil/fork-bomb-crash", fence("import os\nwhile True:\n    os.fork()"), one)
# children that leave the process group and outlive their parent
rec(hostile, "evil/orphans", fence(
    "import os, time\nfor i in range(5):\n    if os.fork() == 0:\n        os.setsid()\n"
    "        time.sleep(60)\n        os._exit(0)\nprint('ok')"), one)
rec(hostile, "evil/memory", fence("x = bytearray(1 << 40)\nprint('ok')"), one)
rec(hostile, "evil/memory-slow", fence("l = []\nwhile True:\n    l.append(' ' * (32 << 20))"), one)
rec(hostile, "evil/write-etc", fence("open('/etc/ds-judge-escape', 'w').write('x')\nprint('ok')"), one)
rec(hostile, "evil/disk", fence("f = open('big', 'w')\nfor i in range(200):\n    f.write('x' * (1 << 20))\nprint('ok')"), one)
rec(hostile, "evil/output", fence("while True:\n    print('y' * 1000)"), one)
rec(hostile, "evil/network", fence(
    "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\nprint('ok')"), one)

for name, recs in (("records.jsonl", ordinary), ("hostile.jsonl", hostile)):
    with open(name, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
