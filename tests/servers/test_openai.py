#!/usr/bin/env python3
"""Self-test of tests/servers/openai.py.

Starts the server on a free port, exercises every endpoint, reasoning mode and
fault kind with urllib / http.client / raw sockets, then drives it with the
official `openai` Python client when one is importable, stops it, and prints
`N passed, N failed` as its last line; exits non-zero on any failure.

    python3 tests/servers/test_openai.py

The `openai` package is looked for in this interpreter, then in the
interpreter named by $DS_OPENAI_PYTHON, then in tests/.venv/bin/python; the
script re-runs itself under the first that has it.  Without one, only the
client section is skipped (and says so).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "openai.py")
VENV_PY = os.path.normpath(os.path.join(HERE, "..", ".venv", "bin", "python"))
from selftest import ServerProc, check, group, jreq, req, summary  # noqa: E402  (before the path is cut)

# tests/servers/openai.py would shadow the real `openai` package.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

KEY = "sk-selftest-" + os.urandom(8).hex()     # unique, so grepping logs for it means something
MODEL = "deepseek-reasoner-2025-05-28"

for _v in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
    os.environ.pop(_v, None)


# --------------------------------------------------------------------------
# What the server must answer (the documented rule, re-implemented here)
# --------------------------------------------------------------------------

def sha1(s: str) -> str:
    return hashlib.sha1(s.encode()).hexdigest()


def exp_reasoning(problem: str, length: int = 120, variant: int = 0) -> str:
    wide = re.search(r"[^\x00-\x7f]", problem)
    quote = f" ({wide.group(0)})" if wide else ""
    unit = f"Reasoning about: {sha1(problem)[:8]} #{variant}{quote}. "
    return (unit * math.ceil(length / len(unit)))[:length].rstrip()


def exp_answer(n) -> str:
    return "The answer is \\boxed{%s}." % n


def lp_check(entries, k: int) -> str | None:
    """What is wrong with logprobs.content entries asked with top_logprobs k,
    or None: every top list k long, most probable first, its probabilities
    summing to at most 1, and the chosen token's logprob that of its own
    entry there, or below them all when it is not there."""
    for i, e in enumerate(entries):
        top = e["top_logprobs"]
        lps = [t["logprob"] for t in top]
        if len(top) != k:
            return f"token {i}: {len(top)} alternatives, not {k}"
        if lps != sorted(lps, reverse=True):
            return f"token {i}: top list not sorted"
        if sum(math.exp(x) for x in lps) + (0 if lps else math.exp(e["logprob"])) > 1 + 1e-9:
            return f"token {i}: probabilities above 1"
        same = [t for t in top if t["bytes"] == e["bytes"]]
        if same and same[0]["logprob"] != e["logprob"]:
            return f"token {i}: chosen logprob differs from its top entry"
        if not same and lps and e["logprob"] > lps[-1]:
            return f"token {i}: chosen, not in the top list, yet more probable than it"
        if e["bytes"] is None or bytes(e["bytes"]).decode("utf-8", "replace") != e["token"]:
            return f"token {i}: token is not the bytes decoded"
    return None


# --------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------

def raw_post(port, path, body, headers=None, timeout=20):
    """http.client POST -> (status, headers, body bytes or the exception)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        c.request("POST", path, data, {"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        try:
            out = r.read()
        except Exception as e:                                  # noqa: BLE001
            out = e
        return r.status, r.headers, out
    finally:
        c.close()


def sse_events(raw: bytes) -> list[str]:
    """`data:` payloads of an SSE body (comments and blank lines dropped)."""
    out = []
    for block in raw.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                out.append(line[6:])
    return out


# --------------------------------------------------------------------------
# urllib / http.client / socket tests against the main server
# --------------------------------------------------------------------------

def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def run_http_tests(S: ServerProc) -> None:
    B, P = S.base, S.port
    AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    CHAT = f"{B}/v1/chat/completions"

    def chat(body, headers=None, url=CHAT):
        return jreq(url, method="POST", data=body, headers={**AUTH, **(headers or {})})

    def msgs(text):
        return [{"role": "user", "content": text}]

    def set_faults(spec=None, **body):
        if spec is not None:
            body["spec"] = spec
        st, _, out = jreq(f"{B}/_faults", method="POST", data=body)
        assert st == 200, (st, out)
        return out

    def clear():
        req(f"{B}/_faults", method="DELETE")
        req(f"{B}/_debug/requests", method="DELETE")

    def log_entries():
        return jreq(f"{B}/_debug/requests")[2]["requests"]

    def t_health_models():
        st, _, j = jreq(f"{B}/_debug/health")
        check("health", st == 200 and j["ok"] and j["port"] == P and j["model"] == MODEL, j)
        for path in ("/v1/models", "/models", "/v1/models/"):
            st, h, j = jreq(B + path, headers=AUTH)
            check(f"GET {path} lists the model", st == 200 and j == {
                "object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "deepseek"}]}
                and h["Content-Type"].startswith("application/json"), (st, j))
        st, _, j = jreq(f"{B}/v1/models/{MODEL}", headers=AUTH)
        check("GET /v1/models/ID", st == 200 and j["id"] == MODEL, j)
        st, _, j = jreq(f"{B}/v1/models/nope", headers=AUTH)
        check("GET /v1/models/unknown -> 404 model_not_found",
              st == 404 and j["error"]["code"] == "model_not_found", j)
        st, _, j = jreq(f"{B}/v1/nothing", headers=AUTH)
        check("unknown path -> 404 JSON error", st == 404 and "error" in j, (st, j))
        st, _, j = jreq(CHAT, headers=AUTH)
        check("GET on chat/completions -> 405", st == 405 and "error" in j, (st, j))

    def t_auth():
        body = {"model": "deepseek-reasoner", "messages": msgs("hi")}
        for name, hdr in (("no Authorization", {}), ("wrong key", {"Authorization": "Bearer sk-bad"}),
                          ("not Bearer", {"Authorization": KEY})):
            st, _, j = jreq(CHAT, method="POST", data=body, headers=hdr)
            ok = (st == 401 and set(j["error"]) == {"message", "type", "param", "code"}
                  and j["error"]["type"] == "authentication_error")
            check(f"401 on {name}", ok, (st, j))
        st, _, j = jreq(f"{B}/v1/models")
        check("401 on /v1/models without a key", st == 401, st)
        st, _, j = chat(body)
        check("200 with the right key", st == 200, (st, j))

    def t_basic():
        prob = "What is 17 + 4? Put the answer in a box."
        st, h, j = chat({"model": "deepseek-reasoner", "messages": msgs(prob)})
        c = j["choices"][0]
        r = exp_reasoning(prob)
        check("chat: 200 application/json", st == 200 and h["Content-Type"] == "application/json")
        check("chat: object/model (server's --model, not the requested one)",
              j["object"] == "chat.completion" and j["model"] == MODEL and j["id"]
              and isinstance(j["created"], int) and j.get("system_fingerprint"), j)
        check("chat: reasoning_content follows the documented rule",
              c["message"]["reasoning_content"] == r, c["message"])
        check("chat: content is the boxed first integer",
              c["message"]["content"] == exp_answer(17) and c["message"]["role"] == "assistant",
              c["message"])
        check("chat: one choice, index 0, stop, logprobs null",
              len(j["choices"]) == 1 and c["index"] == 0 and c["finish_reason"] == "stop"
              and "logprobs" in c and c["logprobs"] is None, c)
        u = j["usage"]
        rt = len(r.split())
        check("usage: reasoning_tokens = words of the reasoning",
              u["completion_tokens_details"]["reasoning_tokens"] == rt, u)
        check("usage: completion = reasoning + answer words; total = prompt + completion",
              u["completion_tokens"] == rt + 4 and u["prompt_tokens"] == len(prob.split())
              and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u)
        check("usage: first sight is a cache miss (DeepSeek and OpenAI fields)",
              u["prompt_cache_hit_tokens"] == 0 and u["prompt_cache_miss_tokens"] == u["prompt_tokens"]
              and u["prompt_tokens_details"]["cached_tokens"] == 0, u)
        u2 = chat({"model": "x", "messages": msgs(prob)})[2]["usage"]
        check("usage: the same messages again are a cache hit",
              u2["prompt_cache_hit_tokens"] == u2["prompt_tokens"] and u2["prompt_cache_miss_tokens"] == 0
              and u2["prompt_tokens_details"]["cached_tokens"] == u2["prompt_tokens"], u2)
        st, _, j = chat({"model": "x", "messages": msgs(prob)}, url=f"{B}/chat/completions")
        check("/chat/completions (no /v1) works too", st == 200 and j["model"] == MODEL, st)

    def t_answer_rule():
        cases = [("Compute it. answer = -12, not 5", "-12"), ("Find x if 3x = 9", "3"),
                 ("No digits here.", "42"), ("ANSWER: 7 (from 99)", "7")]
        for text, n in cases:
            j = chat({"model": "x", "messages": msgs(text)})[2]
            check(f"answer rule: {text!r} -> {n}", j["choices"][0]["message"]["content"] == exp_answer(n), j)
        grades = {"correct": "\nVERDICT: CORRECT", "incorrect": "\nVERDICT: INCORRECT"}
        for kind, tail in grades.items():
            m = chat({"model": "x", "messages": msgs(f"Grade 3 vs 3. grade={kind}")})[2]["choices"][0]["message"]
            check(f"grade={kind}: a grader's reply ending in its verdict line",
                  m["content"].endswith(tail) and m["content"].count("VERDICT") == 1, m)
        m = chat({"model": "x", "messages": msgs("grade=garbage 7")})[2]["choices"][0]["message"]
        check("grade=garbage: a reply with no verdict and no box", "VERDICT" not in m["content"]
              and "boxed" not in m["content"], m)
        m = chat({"model": "x", "messages": msgs("x grade=double")})[2]["choices"][0]["message"]
        check("grade=double: two verdict lines that disagree",
              m["content"].count("VERDICT: ") == 2 and m["content"].endswith("VERDICT: INCORRECT"), m)
        m = chat({"model": "x", "messages": msgs("grade=correctly 5")})[2]["choices"][0]["message"]
        check("grade=correctly is no grade marker: the boxed number", m["content"] == exp_answer(5), m)
        conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first 1"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "second 2"}]}]
        j = chat({"model": "x", "messages": conv})[2]
        m = j["choices"][0]["message"]
        check("the LAST user message drives the answer (text parts joined)",
              m["content"] == exp_answer(2) and m["reasoning_content"] == exp_reasoning("second 2"), m)
        e = [x for x in log_entries() if x.get("completion")][-1]
        check("log: user_sha1 is the FIRST user message, last_user_sha1 the last",
              e["user_sha1"] == sha1("first 1") and e["last_user_sha1"] == sha1("second 2"), e)

    def t_len_n_temp():
        p = "len test 5"
        j = chat({"model": "x", "messages": msgs(p), "x_reasoning_len": 1000})[2]
        r = j["choices"][0]["message"]["reasoning_content"]
        check("x_reasoning_len sets the reasoning length", r == exp_reasoning(p, 1000) and len(r) >= 990, len(r))
        j = chat({"model": "x", "messages": msgs(p)}, {"X-Test-Len": "45"})[2]
        check("X-Test-Len header does too",
              j["choices"][0]["message"]["reasoning_content"] == exp_reasoning(p, 45), j)
        j = chat({"model": "x", "messages": msgs(p), "x_reasoning_len": 0})[2]
        check("length 0 -> empty reasoning", j["choices"][0]["message"]["reasoning_content"] == ""
              and j["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0, j)
        j = chat({"model": "x", "messages": msgs(p), "n": 3, "temperature": 0.6})[2]
        cs = j["choices"]
        check("n=3 -> 3 choices with index 0,1,2", [c["index"] for c in cs] == [0, 1, 2], cs)
        check("choices vary deterministically by index",
              all(c["message"]["reasoning_content"] == exp_reasoning(p, 120, i) for i, c in enumerate(cs)), cs)
        check("usage sums over the n choices",
              j["usage"]["completion_tokens"] == sum(len(exp_reasoning(p, 120, i).split()) + 4 for i in range(3)),
              j["usage"])
        j = chat({"model": "x", "messages": msgs(p), "n": 2, "temperature": 0})[2]
        check("temperature 0: all n choices identical (greedy)",
              [c["message"]["reasoning_content"] for c in j["choices"]] == [exp_reasoning(p)] * 2, j)
        e = log_entries()[-1]
        check("log records n, stream, max_tokens, temperature",
              (e["n"], e["stream"], e["max_tokens"], e["temperature"]) == (2, False, None, 0), e)

    def t_max_tokens():
        p = "budget 8"
        r = exp_reasoning(p)
        R = len(r.split())
        j = chat({"model": "x", "messages": msgs(p), "max_tokens": 5})[2]
        c = j["choices"][0]
        check("max_tokens inside the reasoning: length, 5 words, empty content",
              c["finish_reason"] == "length" and c["message"]["reasoning_content"] == " ".join(r.split()[:5])
              and c["message"]["content"] == "" and j["usage"]["completion_tokens"] == 5, c)
        j = chat({"model": "x", "messages": msgs(p), "max_tokens": R + 2})[2]
        c = j["choices"][0]
        check("max_tokens inside the answer: length, answer cut to 2 words",
              c["finish_reason"] == "length" and c["message"]["reasoning_content"] == r
              and c["message"]["content"] == "The answer" and j["usage"]["completion_tokens"] == R + 2, c)
        j = chat({"model": "x", "messages": msgs(p), "max_tokens": R + 4})[2]
        check("max_tokens exactly enough -> stop", j["choices"][0]["finish_reason"] == "stop", j)
        j = chat({"model": "x", "messages": msgs(p), "max_completion_tokens": 3})[2]
        check("max_completion_tokens is honoured as well",
              j["choices"][0]["finish_reason"] == "length" and j["usage"]["completion_tokens"] == 3, j)
        j = chat({"model": "x", "messages": msgs(p), "max_tokens": 5}, {"X-Test-Reasoning": "think"})[2]
        check("think + truncation in the reasoning: no </think>",
              j["choices"][0]["message"]["content"] == "<think>\n" + " ".join(r.split()[:5]), j)

    def t_modes():
        p = "modes 3"
        r, a = exp_reasoning(p), exp_answer(3)
        want = {"think": "<think>\n" + r + "\n</think>\n\n" + a,
                "think-open": r + "\n</think>\n\n" + a, "none": a}
        for mode, content in want.items():
            j = chat({"model": "x", "messages": msgs(p)}, {"X-Test-Reasoning": mode})[2]
            m = j["choices"][0]["message"]
            check(f"mode {mode}: content exact, no reasoning_content",
                  m["content"] == content and "reasoning_content" not in m, m)
        j = chat({"model": "x", "messages": msgs(p)}, {"X-Test-Reasoning": "none"})[2]
        check("mode none: reasoning_tokens 0", j["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
              and j["usage"]["completion_tokens"] == 4, j["usage"])
        st, _, j = chat({"model": "x", "messages": msgs(p)}, {"X-Test-Reasoning": "bogus"})
        check("bad X-Test-Reasoning -> 400", st == 400, st)

    def t_validation():
        good = {"model": "x", "messages": msgs("v 1")}
        cases = {
            "malformed JSON": b'{"model": "x", "messages": [',
            "not an object": [1, 2],
            "missing messages": {"model": "x"},
            "empty messages": {"model": "x", "messages": []},
            "missing model": {"messages": msgs("a")},
            "bad role": {"model": "x", "messages": [{"role": "robot", "content": "a"}]},
            "content not text": {"model": "x", "messages": [{"role": "user", "content": 5}]},
            "reasoning_content in input": {"model": "x", "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b", "reasoning_content": "c"},
                {"role": "user", "content": "d"}]},
            "n=0": dict(good, n=0), "n='2'": dict(good, n="2"),
            "max_tokens=0": dict(good, max_tokens=0),
            "temperature=3": dict(good, temperature=3),
            "stream='yes'": dict(good, stream="yes"),
            "stream_options without stream": dict(good, stream_options={"include_usage": True}),
        }
        for name, body in cases.items():
            st, _, j = jreq(CHAT, method="POST", data=body, headers=AUTH)
            ok = (st == 400 and isinstance(j, dict)
                  and set(j["error"]) == {"message", "type", "param", "code"}
                  and j["error"]["type"] == "invalid_request_error" and j["error"]["message"])
            check(f"400 on {name}", ok, (st, j))

    def stream(body, headers=None):
        st, h, raw = raw_post(P, "/v1/chat/completions", dict(body, stream=True),
                              {**AUTH, **(headers or {})})
        return st, h, raw

    def t_stream():
        p = "stream 9"
        r, a = exp_reasoning(p), exp_answer(9)
        st, h, raw = stream({"model": "x", "messages": msgs(p), "stream_options": {"include_usage": True}})
        check("stream: 200 text/event-stream, chunked",
              st == 200 and h["Content-Type"].startswith("text/event-stream")
              and h["Transfer-Encoding"] == "chunked", (st, dict(h)))
        text = raw.decode()
        check("stream: every event is 'data: ...\\n\\n'",
              all(b.startswith("data: ") for b in text.split("\n\n") if b), text[:300])
        ev = sse_events(raw)
        check("stream: ends with data: [DONE]", ev[-1] == "[DONE]" and text.endswith("data: [DONE]\n\n"))
        chunks = [json.loads(e) for e in ev[:-1]]
        check("stream: object chat.completion.chunk, one id, server's model",
              all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
              and len({c["id"] for c in chunks}) == 1)
        d0 = chunks[0]["choices"][0]["delta"]
        check("stream: first chunk carries the role", d0.get("role") == "assistant", d0)
        body = [c for c in chunks if c["choices"]]
        rs = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in body)
        cs = "".join(c["choices"][0]["delta"].get("content") or "" for c in body)
        check("stream: reasoning deltas join to the reasoning", rs == r, rs)
        check("stream: content deltas join to the answer", cs == a, cs)
        kinds = ["r" if c["choices"][0]["delta"].get("reasoning_content") else
                 "c" if c["choices"][0]["delta"].get("content") else "-" for c in body]
        order = re.sub(r"(.)\1*", r"\1", "".join(kinds))
        check("stream: role, then reasoning, then content, then finish", order == "-rc-", order)
        check("stream: more than one reasoning delta", kinds.count("r") > 1, kinds)
        fin = body[-1]["choices"][0]
        check("stream: last choice chunk has finish_reason stop and empty delta",
              fin["finish_reason"] == "stop" and fin["delta"] == {}, fin)
        check("stream: no finish_reason before the end",
              all(c["choices"][0]["finish_reason"] is None for c in body[:-1]))
        last = chunks[-1]
        check("include_usage: last chunk has choices [] and the usage",
              last["choices"] == [] and last["usage"]["completion_tokens"] == len(r.split()) + 4
              and last["usage"]["completion_tokens_details"]["reasoning_tokens"] == len(r.split()), last)
        check("include_usage: the other chunks have usage null",
              all("usage" in c and c["usage"] is None for c in chunks[:-1]))
        st, h, raw = stream({"model": "x", "messages": msgs(p)})
        chunks = [json.loads(e) for e in sse_events(raw)[:-1]]
        check("without include_usage: no usage anywhere",
              all("usage" not in c for c in chunks) and all(c["choices"] for c in chunks), chunks[-1])
        st, h, raw = stream({"model": "x", "messages": msgs(p), "stream_options": {"include_usage": False}})
        check("include_usage false: no usage chunk",
              all("usage" not in json.loads(e) for e in sse_events(raw)[:-1]))

    def t_stream_n_modes():
        p = "stream n 4"
        st, h, raw = stream({"model": "x", "messages": msgs(p), "n": 2, "max_tokens": 7,
                             "stream_options": {"include_usage": True}})
        chunks = [json.loads(e) for e in sse_events(raw)[:-1]]
        got: dict = {}
        fins = {}
        for c in chunks:
            for ch in c["choices"]:
                d = got.setdefault(ch["index"], ["", ""])
                d[0] += ch["delta"].get("reasoning_content") or ""
                d[1] += ch["delta"].get("content") or ""
                if ch["finish_reason"]:
                    fins[ch["index"]] = ch["finish_reason"]
        want = {i: [" ".join(exp_reasoning(p, 120, i).split()[:7]), ""] for i in range(2)}
        check("stream n=2 + max_tokens: per-index text truncated, finish length",
              got == want and fins == {0: "length", 1: "length"}, (got, fins))
        check("stream n=2: usage totals both choices", chunks[-1]["usage"]["completion_tokens"] == 14,
              chunks[-1])
        r, a = exp_reasoning(p), exp_answer(4)
        for mode, content in (("think", "<think>\n" + r + "\n</think>\n\n" + a),
                              ("think-open", r + "\n</think>\n\n" + a), ("none", a)):
            st, h, raw = stream({"model": "x", "messages": msgs(p)}, {"X-Test-Reasoning": mode})
            chunks = [json.loads(e) for e in sse_events(raw)[:-1]]
            cs = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
            check(f"stream mode {mode}: content deltas join exactly, no reasoning_content",
                  cs == content and not any("reasoning_content" in c["choices"][0]["delta"] for c in chunks),
                  cs)

    def t_logprobs():
        p = "lp 6 \u221a"                                  # a 3-byte character: cut across two tokens
        r, a = exp_reasoning(p), exp_answer(6)
        check("a non-ASCII prompt gets its first such character quoted in the reasoning",
              r.startswith(f"Reasoning about: {sha1(p)[:8]} #0 (\u221a). "), r)
        base = {"model": "x", "messages": msgs(p), "logprobs": True, "top_logprobs": 5}
        st, _, j = chat(base)
        c = j["choices"][0]
        lp = c["logprobs"]
        ents = lp["content"]
        raw = b"".join(bytes(e["bytes"]) for e in ents)
        check("logprobs: {content, refusal}; the tokens' bytes are the raw completion, </think> included",
              st == 200 and lp["refusal"] is None and raw == (r + "\n</think>\n\n" + a).encode(), raw[-60:])
        check("logprobs: the message text is unchanged", c["message"]["reasoning_content"] == r
              and c["message"]["content"] == a, c["message"])
        check("logprobs: top lists of 5, sorted, consistent with the chosen token", lp_check(ents, 5) is None,
              lp_check(ents, 5))
        cut = [e for e in ents if not bytes(e["bytes"]).isascii()]
        bad = [e for e in cut if not _utf8(bytes(e["bytes"]))]
        check("logprobs: the 3-byte character is split across two tokens, each invalid UTF-8 alone: "
              "token has U+FFFD, bytes are exact",
              len(cut) >= 2 and len(bad) == len(cut) and all("\ufffd" in e["token"] for e in cut)
              and b"".join(bytes(e["bytes"]) for e in cut[:2]) == "\u221a".encode(), cut[:2])
        ranks = {next((i for i, t in enumerate(e["top_logprobs"]) if t["bytes"] == e["bytes"]), -1)
                 for e in ents}
        check("logprobs: the chosen token is first, second, or not in the top list (sampled)",
              ranks == {0, 1, -1}, ranks)
        j2 = chat(base)[2]
        check("logprobs: deterministic", j2["choices"][0]["logprobs"] == lp)
        st, _, raw_s = stream(dict(base, stream_options={"include_usage": True}))
        chunks = [json.loads(e) for e in sse_events(raw_s)[:-1]]
        got = [x for ch in chunks for c0 in ch["choices"] if c0["logprobs"] for x in c0["logprobs"]["content"]]
        check("stream: the chunks' logprobs entries, joined, are the non-streaming ones", got == ents,
              (len(got), len(ents)))
        text_ok = all(b"".join(bytes(x["bytes"]) for x in c0["logprobs"]["content"]).decode()
                      == (c0["delta"].get("reasoning_content") or c0["delta"].get("content") or "")
                      for ch in chunks for c0 in ch["choices"] if c0["logprobs"]
                      and (c0["delta"].get("reasoning_content") or c0["delta"].get("content")))
        tag = [c0 for ch in chunks for c0 in ch["choices"] if c0["logprobs"]
               and not (c0["delta"].get("reasoning_content") or c0["delta"].get("content"))]
        check("stream: each chunk's entries spell its delta; reasoning_content chunks carry them too",
              text_ok and any(c0["delta"].get("reasoning_content") for ch in chunks for c0 in ch["choices"]
                              if c0["logprobs"]), chunks[1])
        check("stream: one chunk of no text carries the \\n</think>\\n\\n tokens",
              len(tag) == 1 and b"".join(bytes(x["bytes"]) for x in tag[0]["logprobs"]["content"])
              == b"\n</think>\n\n", tag)
        for mode, content in (("think", "<think>\n" + r + "\n</think>\n\n" + a), ("none", a)):
            e = chat(base, {"X-Test-Reasoning": mode})[2]["choices"][0]["logprobs"]["content"]
            check(f"mode {mode}: the tokens spell message.content", b"".join(bytes(x["bytes"]) for x in e)
                  == content.encode(), e[:2])
        e = chat(dict(base, max_tokens=5))[2]["choices"][0]
        check("max_tokens in the reasoning: no </think> token", b"".join(
            bytes(x["bytes"]) for x in e["logprobs"]["content"]).decode() == e["message"]["reasoning_content"], e)
        for k in (0, 1, 20):
            e = chat(dict(base, top_logprobs=k))[2]["choices"][0]["logprobs"]["content"]
            check(f"top_logprobs {k}", lp_check(e, k) is None, lp_check(e, k))
        e = chat(dict(base, top_logprobs=None))[2]["choices"][0]["logprobs"]["content"]
        check("logprobs true without top_logprobs: empty top lists", lp_check(e, 0) is None)
        for name, body in (("top_logprobs 21", dict(base, top_logprobs=21)),
                           ("top_logprobs without logprobs", dict(base, logprobs=False)),
                           ("logprobs 'yes'", dict(base, logprobs="yes"))):
            st, _, j = chat(body)
            check(f"400 on {name}", st == 400 and j["error"]["param"] in ("top_logprobs", "logprobs"), (st, j))
        j = chat(dict(base, logprobs=False, top_logprobs=None))[2]
        check("logprobs false: logprobs null", j["choices"][0]["logprobs"] is None, j)
        set_faults("completions:nologprobs@1")
        chat({"model": "x", "messages": msgs(p)})
        st, _, j = chat(base)
        check("nologprobs: logprobs null (not used up by a request that asked none)",
              st == 200 and j["choices"][0]["logprobs"] is None and chat(base)[2]["choices"][0]["logprobs"], j)
        set_faults("completions:nologprobs@1")
        st, _, raw_s = stream(dict(base))
        check("nologprobs (stream): every chunk has logprobs null",
              all(c0["logprobs"] is None for e in sse_events(raw_s)[:-1] for c0 in json.loads(e)["choices"]))
        set_faults("body=lp 6:toplogprobs:2")
        e = chat(base)[2]["choices"][0]["logprobs"]["content"]
        check("toplogprobs:2 (a server that caps them): 2 alternatives", {len(x["top_logprobs"]) for x in e} == {2})
        e = chat(dict(base, top_logprobs=1))[2]["choices"][0]["logprobs"]["content"]
        check("toplogprobs:2 with 1 asked: 1", {len(x["top_logprobs"]) for x in e} == {1})
        set_faults("completions:fffd")
        e = chat(base)[2]["choices"][0]["logprobs"]["content"]
        check("fffd (vLLM's bytes): bytes are the UTF-8 of token, U+FFFD for a cut character",
              all(bytes(x["bytes"]) == x["token"].encode() for x in e)
              and any(bytes(x["bytes"]) == "\ufffd".encode() for x in e), e[:1])
        L = log_entries()[-1]
        check("log: logprobs, top_logprobs and the fault", L["logprobs"] is True and L["top_logprobs"] == 5
              and L["faults"] == ["fffd"], L)
        req(f"{B}/_faults", method="DELETE")

    def t_status_faults():
        body = {"model": "x", "messages": msgs("f 1")}
        set_faults("chat/completions:429:2@1")
        st, h, j = chat(body)
        check("429 fault: status, Retry-After, OpenAI error JSON",
              st == 429 and h["Retry-After"] == "2" and j["error"]["type"] == "rate_limit_error", (st, j))
        check("@1: the next request is fine", chat(body)[0] == 200)
        for code, msg in (("400", "Invalid Format"), ("401", "Authentication Fails"),
                          ("402", "Insufficient Balance"), ("422", "Invalid Parameters"),
                          ("500", "Server Error"), ("503", "Server Overloaded")):
            set_faults(f"completions:{code}@1")
            st, h, j = chat(body)
            check(f"{code} fault -> DeepSeek message {msg!r}",
                  st == int(code) and isinstance(j, dict) and j["error"]["message"].startswith(msg), (st, j))
        for code in ("502", "504"):
            set_faults(f"completions:{code}@1")
            st, h, b = req(CHAT, method="POST", data=body, headers=AUTH)
            check(f"{code} fault -> HTML body like a gateway",
                  st == int(code) and h["Content-Type"] == "text/html" and b"<html>" in b, (st, b[:80]))
        set_faults("^/v1/models:503")
        check("faults match the target: models 503, chat fine",
              jreq(f"{B}/v1/models", headers=AUTH)[0] == 503 and chat(body)[0] == 200)
        st = jreq(f"{B}/_faults")[2]
        check("GET /_faults lists rules with fired counts",
              st["rules"][0]["kind"] == "503" and st["rules"][0]["fired"] == 1
              and st["rules"][0]["remaining"] is None, st)
        out = set_faults(rules=[{"path": "completions", "kind": "429", "arg": 1, "count": 1}], append=True)
        check("POST JSON rules with append", [r["kind"] for r in out["rules"]] == ["503", "429"], out)
        check("DELETE /_faults clears", jreq(f"{B}/_faults", method="DELETE")[2] == {"rules": []})
        for bad in ("x:nope", "x:500:1", "x:429:-1", "(:500", "x:cut:abc"):
            st, _, j = jreq(f"{B}/_faults", method="POST", data={"spec": bad})
            check(f"bad rule {bad!r} -> 400", st == 400, (st, j))
        st, _, j = jreq(f"{B}/_faults", method="POST", data="completions:500@1")
        check("a bare JSON string is a spec", st == 200 and j["rules"][0]["kind"] == "500", j)
        req(f"{B}/_faults", method="DELETE")
        set_faults("a:b:500@2")
        check("the regex may contain ':'", jreq(f"{B}/_faults")[2]["rules"][0]["path"] == "a:b")
        req(f"{B}/_faults", method="DELETE")

    def t_marker():
        set_faults("body=PROBLEM-0007:500")
        sts = [chat({"model": "x", "messages": msgs(f"Solve PROBLEM-000{i}: 1+{i}")})[0] for i in range(5, 10)]
        check("body=MARKER: only the problem carrying the marker fails", sts == [200, 200, 500, 200, 200], sts)
        set_faults("body=\\bid-42\\b:cut:10@1")
        st, h, out = raw_post(P, "/v1/chat/completions",
                              {"model": "x", "messages": msgs("problem id-42")}, AUTH)
        check("body=REGEX works with other kinds (cut)", isinstance(out, http.client.IncompleteRead), out)
        set_faults("body=hidden word:429:1")
        conv = [{"role": "system", "content": "contains the hidden word"}, {"role": "user", "content": "q"}]
        check("body= also searches system messages", chat({"model": "x", "messages": conv})[0] == 429)
        req(f"{B}/_faults", method="DELETE")

    def t_cut_malformed():
        clear()
        set_faults("completions:cut:100@1")
        st, h, out = raw_post(P, "/v1/chat/completions", {"model": "x", "messages": msgs("c 1")}, AUTH)
        check("cut (JSON): 200, headers promise more, connection dropped",
              st == 200 and isinstance(out, http.client.IncompleteRead) and len(out.partial) == 100,
              (st, type(out)))
        e = log_entries()[-1]
        check("cut: the log shows the 100 bytes sent and the fault", e["bytes"] == 100 and e["faults"] == ["cut:100"], e)
        st, h, out = raw_post(P, "/v1/chat/completions", {"model": "x", "messages": msgs("c 1")}, AUTH)
        check("cut@1 used up: next body whole", isinstance(out, bytes) and json.loads(out)["choices"], st)
        set_faults("completions:cut:1500@1")
        st, h, out = raw_post(P, "/v1/chat/completions",
                              {"model": "x", "messages": msgs("c 2"), "stream": True}, AUTH)
        ok = isinstance(out, http.client.IncompleteRead)
        part = out.partial.decode() if ok else ""
        check("cut (stream): some chunks, then the connection drops (no [DONE])",
              ok and part.count("data: ") >= 2 and "[DONE]" not in part, (type(out), part[-200:]))
        set_faults("completions:cut@1")
        st, h, out = raw_post(P, "/v1/chat/completions",
                              {"model": "x", "messages": msgs("c 3"), "stream": True}, AUTH)
        check("cut without BYTES: cut halfway through the stream", isinstance(out, http.client.IncompleteRead))
        set_faults("completions:cut:100000000@1")
        st, h, out = raw_post(P, "/v1/chat/completions", {"model": "x", "messages": msgs("c 4")}, AUTH)
        check("cut past the end: body whole, rule not used up",
              isinstance(out, bytes) and jreq(f"{B}/_faults")[2]["rules"][0]["remaining"] == 1)
        set_faults("completions:malformed@1")
        st, h, out = raw_post(P, "/v1/chat/completions", {"model": "x", "messages": msgs("m 1")}, AUTH)
        try:
            json.loads(out)
            bad = False
        except ValueError:
            bad = True
        check("malformed (JSON): 200 with a complete body that is not JSON",
              st == 200 and isinstance(out, bytes) and bad and len(out) == int(h["Content-Length"]), out[:80])
        set_faults("completions:malformed@1")
        st, h, out = raw_post(P, "/v1/chat/completions",
                              {"model": "x", "messages": msgs("m 2"), "stream": True}, AUTH)
        evs = sse_events(out)
        nbad = 0
        for e in evs[:-1]:
            try:
                json.loads(e)
            except ValueError:
                nbad += 1
        check("malformed (stream): one data: event is not JSON, stream still ends with [DONE]",
              nbad == 1 and evs[-1] == "[DONE]", evs[-3:])
        req(f"{B}/_faults", method="DELETE")

    def t_delays():
        body = {"model": "x", "messages": msgs("d 1")}
        # Upper bounds leave a loaded machine most of a second: only
        # "delayed" versus "not delayed" is tested.
        set_faults("completions:slow:1.5@1")
        t = time.monotonic()
        chat(body)
        dt = time.monotonic() - t
        check("slow:1.5 delays the first byte ~1.5 s", 1.45 <= dt < 3, dt)
        t = time.monotonic()
        chat(body)
        check("slow@1 used up", time.monotonic() - t < 1.2)
        set_faults("completions:latency:300")
        t = time.monotonic()
        chat(body)
        chat(body)
        dt = time.monotonic() - t
        check("latency:300 delays every request", 0.58 <= dt < 2.5, dt)
        set_faults("completions:drip:40")
        t = time.monotonic()
        st, h, raw = stream({"model": "x", "messages": msgs("d 2"), "x_reasoning_len": 60})
        dt = time.monotonic() - t
        n = len(sse_events(raw))
        check("drip:40 spaces the SSE events", dt >= 0.04 * (n - 2) and raw.endswith(b"[DONE]\n\n"), (dt, n))
        req(f"{B}/_faults", method="DELETE")

    def t_queue():
        clear()
        set_faults("completions:queue:1:0.25@2")
        body = json.dumps({"model": "x", "messages": msgs("q 5")}).encode()
        s = socket.create_connection(("127.0.0.1", P), timeout=10)
        t = time.monotonic()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                  + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        first = s.recv(4096)
        t_first = time.monotonic() - t
        buf = first
        while not buf.endswith(b"0\r\n\r\n"):
            d = s.recv(65536)
            if not d:
                break
            buf += d
        total = time.monotonic() - t
        s.close()
        check("queue (JSON): 200 and headers arrive at once", buf.startswith(b"HTTP/1.1 200") and t_first < 0.5,
              (t_first, first[:40]))
        head, _, rest = buf.partition(b"\r\n\r\n")
        # de-chunk
        payload = b""
        while rest:
            size_s, _, rest = rest.partition(b"\r\n")
            size = int(size_s, 16)
            if size == 0:
                break
            payload += rest[:size]
            rest = rest[size + 2:]
        lead = len(payload) - len(payload.lstrip(b"\n"))
        check("queue (JSON): blank lines, then the JSON body, after ~1 s",
              lead >= 3 and json.loads(payload)["choices"][0]["message"]["content"] == exp_answer(5)
              and 0.9 <= total < 2.5, (lead, total, payload[:20]))
        t = time.monotonic()
        st, h, raw = stream({"model": "x", "messages": msgs("q 5")})
        text = raw.decode()
        check("queue (stream): ': keep-alive' comments before the first data: event",
              text.startswith(": keep-alive\n\n") and text.count(": keep-alive\n\n") >= 3
              and text.index("data: ") > text.rindex(": keep-alive") and text.endswith("data: [DONE]\n\n")
              and time.monotonic() - t >= 0.9, text[:80])
        set_faults("completions:queue:0.3@1,completions:cut:50@1")
        st, h, out = raw_post(P, "/v1/chat/completions", {"model": "x", "messages": msgs("q 6")}, AUTH)
        check("queue + cut: blank lines, then a cut JSON body",
              isinstance(out, http.client.IncompleteRead) and out.partial.lstrip(b"\n").startswith(b'{"id"')
              and len(out.partial.lstrip(b"\n")) == 50, out)
        req(f"{B}/_faults", method="DELETE")

    def t_debug_log():
        clear()
        jreq(f"{B}/v1/models", headers=AUTH)
        jreq(CHAT, method="POST", data={"model": "m1", "messages": msgs("log 1"), "n": 2, "max_tokens": 50,
                                        "temperature": 0.6, "stream": False})
        chat({"model": "m1", "messages": msgs("log 1"), "n": 2, "max_tokens": 50, "temperature": 0.6})
        raw_post(P, "/v1/chat/completions", {"model": "m2", "messages": msgs("log 2"), "stream": True,
                                              "stream_options": {"include_usage": True}}, AUTH)
        L = log_entries()
        check("log: one entry per API request, control requests not logged", len(L) == 4, L)
        a, b, c, d = L
        check("log: auth state only (none / ok)", (a["auth"], b["auth"], c["auth"]) == ("ok", "none", "ok"), L)
        check("log: a refused request still shows what it asked for",
              b["status"] == 401 and b["n"] == 2 and b["user_sha1"] == sha1("log 1"), b)
        check("log: completion fields",
              c["status"] == 200 and c["completion"] and c["n"] == 2 and c["max_tokens"] == 50
              and c["temperature"] == 0.6 and c["stream"] is False and c["user_sha1"] == sha1("log 1")
              and c["model"] == "m1" and c["finish_reasons"] == ["stop", "stop"] and c["mode"] == "field", c)
        check("log: stream fields", d["stream"] is True and d["include_usage"] is True, d)
        check("log: seq, t, time, path, ms, bytes",
              [x["seq"] for x in L] == sorted(x["seq"] for x in L) and all(
                  {"t", "time", "path", "ms", "bytes", "method"} <= set(x) for x in L), L)
        since = jreq(f"{B}/_debug/requests?since={c['seq']}")[2]["requests"]
        check("log: ?since=SEQ", [x["seq"] for x in since] == [d["seq"]], since)
        check("log: the key never appears", KEY not in json.dumps(L))
        s = jreq(f"{B}/_debug/stats")[2]
        check("stats: counts", s["requests"] == 4 and s["completions"] == 2 and s["streams"] == 1
              and s["choices"] == 3 and s["by_status"] == {"200": 3, "401": 1}
              and s["in_flight"] == 0 and s["max_in_flight"] >= 1 and s["completion_tokens"] > 0, s)
        st, _, j = jreq(f"{B}/_debug/requests", method="DELETE")
        check("DELETE /_debug/requests clears log and stats",
              j == {"cleared": 4} and log_entries() == [] and jreq(f"{B}/_debug/stats")[2]["requests"] == 0)

    def concurrent(n, body, headers):
        """n requests at once on n connections opened beforehand (as a client
        with kept-alive connections has them), timed from a common start."""
        data = json.dumps(body).encode()
        conns = [http.client.HTTPConnection("127.0.0.1", P, timeout=30) for _ in range(n)]
        for c in conns:
            c.connect()
        go = threading.Barrier(n + 1)
        sts = [0] * n

        def one(i):
            go.wait()
            conns[i].request("POST", "/v1/chat/completions", data,
                             {"Content-Type": "application/json", **headers})
            r = conns[i].getresponse()
            r.read()
            sts[i] = r.status

        ths = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for th in ths:
            th.start()
        go.wait()
        t = time.monotonic()
        for th in ths:
            th.join()
        dt = time.monotonic() - t
        for c in conns:
            c.close()
        return sts, dt

    def t_concurrency():
        clear()
        set_faults("completions:latency:300")
        sts, dt = concurrent(64, {"model": "x", "messages": msgs("c64")}, AUTH)
        s = jreq(f"{B}/_debug/stats")[2]
        check("64 concurrent: all 200, max_in_flight == 64",
              sts == [200] * 64 and s["max_in_flight"] == 64, (s["max_in_flight"], dt))
        # The same 512 requests without latency first: that is the CPU cost of
        # 512 requests on this machine (client and server share it).  With
        # 1 s latency each, the delays must overlap completely: the goal is
        # ~1.2 s on an idle machine, and the check allows 1 s + that cost
        # + 0.2 s, so that a busy machine does not make it flaky.  A timing
        # spoiled by another process gets one more try.
        for attempt in (1, 2):
            clear()
            sts0, base = concurrent(512, {"model": "x", "messages": msgs("c512")}, AUTH)
            clear()
            set_faults("completions:latency:1000")
            sts, dt = concurrent(512, {"model": "x", "messages": msgs("c512")}, AUTH)
            s = jreq(f"{B}/_debug/stats")[2]
            print(f"# 512 concurrent requests (try {attempt}): {base:.2f} s without latency, "
                  f"{dt:.2f} s with 1 s latency each")
            fast = dt < min(1.2 + base, 2.0)
            if fast or sts != [200] * 512:
                break
        check("512 concurrent x 1 s latency: all 200, within 1 s + the no-latency time + 0.2 s",
              sts == [200] * 512 and sts0 == [200] * 512 and fast, (dt, base, sorted(set(sts))))
        check("512 concurrent: max_in_flight == 512", s["max_in_flight"] == 512, s["max_in_flight"])
        clear()

    for t in (t_health_models, t_auth, t_basic, t_answer_rule, t_len_n_temp, t_max_tokens, t_modes,
              t_validation, t_stream, t_stream_n_modes, t_logprobs, t_status_faults, t_marker, t_cut_malformed,
              t_delays, t_queue, t_debug_log, t_concurrency):
        group(t)


# --------------------------------------------------------------------------
# The official openai client
# --------------------------------------------------------------------------

def run_openai_tests(S: ServerProc) -> None:
    import openai
    print(f"# openai {openai.__version__} ({sys.executable})")
    B = S.base

    def faults(spec):
        jreq(f"{B}/_faults", method="POST", data={"spec": spec})

    cl = openai.OpenAI(base_url=f"{B}/v1", api_key=KEY, max_retries=0, timeout=20)
    msgs = [{"role": "user", "content": "9.11 and 9.8, which is greater? answer=9"}]
    p = msgs[0]["content"]

    def t_oa_models():
        ids = [m.id for m in cl.models.list()]
        check("openai: models.list()", ids == [MODEL], ids)

    def t_oa_chat():
        r = cl.chat.completions.create(model="deepseek-reasoner", messages=msgs, max_tokens=1000)
        m = r.choices[0].message
        check("openai: non-streaming create(), model is the server's", r.model == MODEL and r.object == "chat.completion")
        check("openai: message.reasoning_content (extra field)",
              getattr(m, "reasoning_content", None) == exp_reasoning(p), getattr(m, "reasoning_content", None))
        check("openai: message.content", m.content == exp_answer(9), m.content)
        u = r.usage
        check("openai: usage fields parsed",
              u.total_tokens == u.prompt_tokens + u.completion_tokens
              and u.completion_tokens_details.reasoning_tokens == len(exp_reasoning(p).split())
              and u.prompt_tokens_details.cached_tokens is not None
              and (u.model_extra or {}).get("prompt_cache_miss_tokens") is not None, u)
        r = cl.chat.completions.create(model="x", messages=msgs, n=3, temperature=0.6, max_tokens=4)
        check("openai: n=3 + max_tokens -> 3 choices, finish_reason length",
              [c.index for c in r.choices] == [0, 1, 2] and all(c.finish_reason == "length" for c in r.choices))
        r = cl.chat.completions.create(model="x", messages=msgs, extra_headers={"X-Test-Reasoning": "think"})
        check("openai: think mode content", r.choices[0].message.content.startswith("<think>\n")
              and r.choices[0].message.content.endswith("</think>\n\n" + exp_answer(9)))
        raw = cl.chat.completions.with_raw_response.create(model="x", messages=msgs)
        check("openai: with_raw_response sees x-request-id", raw.headers.get("x-request-id") == raw.parse().id)

    def t_oa_stream():
        rs = cs = ""
        usage = None
        fin = None
        st = cl.chat.completions.create(model="deepseek-reasoner", messages=msgs, stream=True,
                                        stream_options={"include_usage": True})
        n = 0
        for ch in st:
            n += 1
            assert ch.model == MODEL
            if ch.usage:
                usage = ch.usage
            for c in ch.choices:
                rs += getattr(c.delta, "reasoning_content", None) or ""
                cs += c.delta.content or ""
                fin = c.finish_reason or fin
        check("openai: streaming reasoning_content deltas", rs == exp_reasoning(p), rs)
        check("openai: streaming content deltas + finish_reason", cs == exp_answer(9) and fin == "stop", (cs, fin))
        check("openai: stream_options include_usage", usage is not None
              and usage.completion_tokens == len(rs.split()) + 4, usage)
        cs = ""
        with cl.chat.completions.stream(model="x", messages=msgs,
                                        extra_headers={"X-Test-Reasoning": "think-open"}) as s2:
            for _ in s2:
                pass
            final = s2.get_final_completion()
        check("openai: .stream() helper accumulates (think-open)",
              final.choices[0].message.content == exp_reasoning(p) + "\n</think>\n\n" + exp_answer(9),
              final.choices[0].message.content)

    def t_oa_keepalive():
        faults("completions:queue:0.6:0.2@2")
        r = cl.chat.completions.create(model="x", messages=msgs)
        check("openai: non-streaming reply after keep-alive blank lines", r.choices[0].message.content == exp_answer(9))
        out = "".join(c.choices[0].delta.content or "" for c in
                      cl.chat.completions.create(model="x", messages=msgs, stream=True) if c.choices)
        check("openai: stream after ': keep-alive' comments", out == exp_answer(9), out)

    def t_oa_errors():
        faults("completions:429:1@1")
        try:
            cl.chat.completions.create(model="x", messages=msgs)
            check("openai: 429 -> RateLimitError", False, "no exception")
        except openai.RateLimitError as e:
            check("openai: 429 -> RateLimitError with Retry-After",
                  e.status_code == 429 and e.response.headers.get("retry-after") == "1"
                  and e.body["message"] == "Rate Limit Reached", e)
        faults("completions:429:1@1")
        t = time.monotonic()
        r = cl.with_options(max_retries=2).chat.completions.create(model="x", messages=msgs)
        dt = time.monotonic() - t
        check("openai: client retries after Retry-After: 1 and succeeds",
              r.choices[0].message.content == exp_answer(9) and 0.9 <= dt < 5, dt)
        bad = openai.OpenAI(base_url=f"{B}/v1", api_key="sk-wrong", max_retries=0)
        try:
            bad.chat.completions.create(model="x", messages=msgs)
            check("openai: wrong key -> AuthenticationError", False, "no exception")
        except openai.AuthenticationError as e:
            check("openai: wrong key -> AuthenticationError", e.status_code == 401, e)
        cases = (("402", openai.APIStatusError, "Insufficient Balance"),
                 ("400", openai.BadRequestError, "Invalid Format"),
                 ("422", openai.UnprocessableEntityError, "Invalid Parameters"),
                 ("500", openai.InternalServerError, "Server Error"),
                 ("503", openai.InternalServerError, "Server Overloaded"),
                 ("502", openai.InternalServerError, None))
        for code, exc, msg in cases:
            faults(f"completions:{code}@1")
            try:
                cl.chat.completions.create(model="x", messages=msgs)
                check(f"openai: {code} -> {exc.__name__}", False, "no exception")
            except exc as e:
                ok = e.status_code == int(code) and (msg is None or msg in str(e))
                check(f"openai: {code} -> {exc.__name__}", ok, e)
        try:
            cl.chat.completions.create(model="x", messages=[])
            check("openai: real validation error -> BadRequestError", False, "no exception")
        except openai.BadRequestError as e:
            check("openai: real validation error -> BadRequestError (param set)",
                  e.status_code == 400 and e.param == "messages", e.body)
        faults("completions:cut:1200@1")
        try:
            for _ in cl.chat.completions.create(model="x", messages=msgs, stream=True):
                pass
            check("openai: a cut stream raises", False, "no exception")
        except Exception as e:                                   # noqa: BLE001
            check(f"openai: a cut stream raises ({type(e).__name__})", True, e)
        faults("completions:cut:100@1")
        try:
            cl.chat.completions.create(model="x", messages=msgs)
            check("openai: a cut JSON body raises APIConnectionError", False, "no exception")
        except openai.APIConnectionError:
            check("openai: a cut JSON body raises APIConnectionError", True)
        faults("completions:malformed@1")
        try:
            r = cl.chat.completions.create(model="x", messages=msgs)
            check("openai: malformed JSON body raises", False, r)
        except Exception as e:                                   # noqa: BLE001
            check(f"openai: malformed JSON body raises ({type(e).__name__})", True, e)
        jreq(f"{B}/_faults", method="DELETE")

    def t_oa_logprobs():
        m2 = [{"role": "user", "content": "caf\u00e9 answer=4"}]
        r = cl.chat.completions.create(model="x", messages=m2, logprobs=True, top_logprobs=5)
        lp = r.choices[0].logprobs.content
        m = r.choices[0].message
        raw = b"".join(bytes(e.bytes) for e in lp)
        check("openai: logprobs parsed (ChatCompletionTokenLogprob); bytes spell the completion",
              raw.decode() == m.reasoning_content + "\n</think>\n\n" + m.content
              and all(len(e.top_logprobs) == 5 for e in lp), raw[-40:])
        check("openai: a token of a cut character: token U+FFFD, exact bytes",
              any(e.token == "\ufffd" and e.bytes == [0xc3] for e in lp), [e for e in lp if e.token == "\ufffd"][:1])
        got = []
        for ch in cl.chat.completions.create(model="x", messages=m2, logprobs=True, top_logprobs=5, stream=True):
            for c in ch.choices:
                if c.logprobs and c.logprobs.content:
                    got += c.logprobs.content
        check("openai: streaming chunks' logprobs join to the non-streaming ones",
              [(e.token, e.logprob, e.bytes) for e in got] == [(e.token, e.logprob, e.bytes) for e in lp],
              (len(got), len(lp)))

    for t in (t_oa_models, t_oa_chat, t_oa_stream, t_oa_logprobs, t_oa_keepalive, t_oa_errors):
        group(t)


# --------------------------------------------------------------------------
# Start-up options, self-exit, signals
# --------------------------------------------------------------------------

def run_lifecycle_tests(tmp: str) -> None:
    s = ServerProc(SERVER, tmp, "b", "--reasoning", "think", "--model", "r1-distill", "--latency-ms", "200",
                   "--faults", "completions:503@1", "--max-seconds", "2", "--quiet")
    try:
        body = {"model": "x", "messages": [{"role": "user", "content": "life 2"}]}
        st, _, j = jreq(f"{s.base}/v1/chat/completions", method="POST", data=body)
        check("--faults at start-up; no --api-key: no auth needed", st == 503, (st, j))
        t = time.monotonic()
        st, _, j = jreq(f"{s.base}/v1/chat/completions", method="POST", data=body)
        dt = time.monotonic() - t
        check("--latency-ms 200", 0.19 <= dt < 1, dt)
        check("--reasoning think and --model", st == 200 and j["model"] == "r1-distill"
              and j["choices"][0]["message"]["content"].startswith("<think>\n"), j)
        st, _, j = jreq(f"{s.base}/v1/chat/completions", method="POST", data=body,
                        headers={"X-Test-Reasoning": "field", "Authorization": "Bearer whatever"})
        check("X-Test-Reasoning overrides --reasoning", "reasoning_content" in j["choices"][0]["message"], j)
        check("auth 'present' logged when the server has no key",
              jreq(f"{s.base}/_debug/requests")[2]["requests"][-1]["auth"] == "present")
        try:
            rc = s.proc.wait(5)
        except subprocess.TimeoutExpired:
            rc = "still running"
        check("--max-seconds: exits by itself with status 0", rc == 0, rc)
        check("port file removed on exit", not os.path.exists(s.port_file))
        err = s.stderr()
        check("--quiet: no per-request lines", '"POST ' not in err and "max-seconds reached" in err, err)
    finally:
        s.stop()
    for args in (["--faults", "x:nope"], ["--reasoning", "bogus"], ["--latency-ms", "-1"]):
        r = subprocess.run([sys.executable, SERVER, *args], check=False, capture_output=True,
                           text=True, timeout=10)
        check(f"bad start-up option {args} -> exit 2", r.returncode == 2, r.stderr)


def find_openai() -> str | None:
    """An interpreter that can import the real openai package, or None."""
    try:
        import openai  # noqa: F401
        return sys.executable
    except ImportError:
        pass
    for py in (os.environ.get("DS_OPENAI_PYTHON"), VENV_PY):
        if py and os.access(py, os.X_OK) and subprocess.run(
                [py, "-c", "import openai"], cwd="/", capture_output=True, check=False).returncode == 0:
            return py
    return None


def main() -> int:
    py = find_openai()
    if py and py != sys.executable and not os.environ.get("DS_OPENAI_TEST_REEXEC"):
        print(f"# openai not importable here; re-running under {py}", flush=True)
        os.execve(py, [py, os.path.abspath(__file__), *sys.argv[1:]],
                  dict(os.environ, DS_OPENAI_TEST_REEXEC="1"))
    have_openai = py == sys.executable
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="ds-openai-test-")
    S = None
    try:
        S = ServerProc(SERVER, tmp, "a", "--api-key", KEY, "--model", MODEL, "--max-seconds", "120")
        run_http_tests(S)
        if have_openai:
            run_openai_tests(S)
        else:
            print("skip - openai client tests (the openai package is not importable; "
                  "set DS_OPENAI_PYTHON to an interpreter that has it)")
        jreq(f"{S.base}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        log_text = json.dumps(jreq(f"{S.base}/_debug/requests")[2])
        n_logged = json.loads(log_text)["requests"][-1]["seq"]
        rc = S.stop()
        err = S.stderr()
        check("SIGTERM: clean exit 0", rc == 0, rc)
        check("SIGTERM: port file removed", not os.path.exists(S.port_file))
        lines = [ln for ln in err.splitlines() if ln.startswith('openai: 127.0.0.1 "')]
        check("one stderr line per request", len(lines) >= n_logged > 0, (len(lines), n_logged))
        check("the API key never appears in stderr or the request log", KEY not in err and KEY not in log_text)
        check("no internal errors logged", "internal error" not in err, err[-2000:])
        S = None
        run_lifecycle_tests(tmp)
    except Exception:                                           # noqa: BLE001
        check("test harness", False, traceback.format_exc())
    finally:
        if S is not None:
            S.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# {time.monotonic() - t0:.1f}s")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
