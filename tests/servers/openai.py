#!/usr/bin/env python3
"""Local OpenAI-compatible chat-completions server, with fault injection.

Tests of ds-teacher must never reach the internet, so this server stands in
for the DeepSeek API (`deepseek-reasoner`), vLLM, llama.cpp's server and the
like.  It speaks the subset of the OpenAI protocol that a client of
`POST /v1/chat/completions` uses:

  * GET  /v1/models, /models, /v1/models/ID  -- the one model, --model;
  * POST /v1/chat/completions, /chat/completions -- JSON or SSE (stream),
    with the chain of thought delivered as `reasoning_content` (DeepSeek,
    vLLM), inline `<think>...</think>`, only a closing `</think>`, or not at
    all; `n`, `max_tokens`, `temperature`, `stream_options.include_usage`;
  * DeepSeek's queue keep-alive (blank lines before a JSON body, `: keep-alive`
    SSE comments before a stream);
  * control: /_faults (fault rules), /_debug/requests, /_debug/stats.

The answer is a pure function of the request (see README.md next to this
file for the exact rule), so a test can predict what a client must capture;
a prompt holding `grade=correct|incorrect|garbage|double` gets a grader's
reply (for tests of an LLM judge).
Only the Python 3.11 standard library is used; run with --help for options.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import os
import re
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from dataclasses import dataclass, field

from mockhttp import DispatchingHandler, Faults, Kind, Life, Logger, Server

START = time.monotonic()
MODES = ("field", "think", "think-open", "none")
DEFAULT_REASONING_LEN = 120      # characters of reasoning when the request says nothing
STREAM_WORDS = 3                 # words per SSE delta
MAX_N = 128
MAX_REASONING_LEN = 1 << 24
FINGERPRINT = "fp_ds_mock_openai"

log = Logger("openai")


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def words(text: str) -> int:
    """The server's token count: whitespace-separated words."""
    return len(text.split())


def take_words(text: str, k: int) -> str:
    """The prefix of `text` that ends with its k-th word (spacing kept)."""
    if k <= 0:
        return ""
    for i, m in enumerate(re.finditer(r"\S+", text), 1):
        if i == k:
            return text[:m.end()]
    return text


def content_text(content) -> str:
    """Text of a message's content: a string, or a list of {"type":"text"} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


# --------------------------------------------------------------------------
# Fault rules (same syntax and semantics as hub.py)
# --------------------------------------------------------------------------

# kind -> its arguments (mockhttp.Kind: how many at most, int or float)
KINDS = {"429": Kind(1), "400": Kind(0), "401": Kind(0), "402": Kind(0), "422": Kind(0),
         "500": Kind(0), "502": Kind(0), "503": Kind(0), "504": Kind(0), "cut": Kind(1, int),
         "malformed": Kind(0), "slow": Kind(1), "latency": Kind(1), "queue": Kind(2),
         "drip": Kind(1), "nologprobs": Kind(0), "toplogprobs": Kind(1, int, 1), "fffd": Kind(0)}
STATUS_KINDS = {"429", "400", "401", "402", "422", "500", "502", "503", "504"}
PRE_KINDS = STATUS_KINDS | {"latency", "slow"}          # act before routing
BODY_KINDS = {"cut", "malformed", "queue", "drip"}       # act while answering a completion
LP_KINDS = {"nologprobs", "toplogprobs", "fffd"}         # bad teachers: act on asked-for logprobs


# --------------------------------------------------------------------------
# Canned errors
# --------------------------------------------------------------------------

# status -> (message, type, code); DeepSeek's messages (its error-code page),
# in the OpenAI error envelope {"error":{"message","type","param","code"}}.
FAULT_ERRORS = {
    400: ("Invalid Format", "invalid_request_error", "invalid_request_error"),
    401: ("Authentication Fails, Your api key is invalid", "authentication_error",
          "invalid_request_error"),
    402: ("Insufficient Balance", "unknown_error", "invalid_request_error"),
    422: ("Invalid Parameters", "invalid_request_error", "invalid_request_error"),
    429: ("Rate Limit Reached", "rate_limit_error", "rate_limit_exceeded"),
    500: ("Server Error", "server_error", "internal_error"),
    503: ("Server Overloaded", "server_error", "server_overloaded"),
}
# 502/504 come from the CDN/proxy in front of the API, not from the API
# itself, so they are HTML, not JSON: a client must cope with that.
GATEWAY_HTML = ("<html>\r\n<head><title>{s} {m}</title></head>\r\n<body>\r\n<center><h1>{s} {m}"
                "</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n")
GATEWAY = {502: "Bad Gateway", 504: "Gateway Time-out"}


class Reply(Exception):
    """Raised by a route to answer with an OpenAI-style JSON error."""

    def __init__(self, status: int, message: str, etype: str = "invalid_request_error",
                 code: str | None = "invalid_request_error", param: str | None = None,
                 headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.etype, self.code, self.param = status, message, etype, code, param
        self.headers = headers or {}


class Cut(Exception):
    """The `cut` fault hung up mid-body."""


# --------------------------------------------------------------------------
# Server state
# --------------------------------------------------------------------------

@dataclass
class Config:
    model: str = "deepseek-reasoner"
    api_key: str | None = None
    echo_auth: bool = False  # a 401 quotes the Authorization header it got
    reasoning: str = "field"
    latency_ms: float = 0.0
    quiet: bool = False


class State:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.faults = Faults(KINDS)
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.seq = 0
        self.seen_prompts: set[str] = set()
        self.in_flight = 0
        self.reset_stats()

    def reset_stats(self) -> None:
        # Called with self.lock held (or before any thread runs).
        self.stats = {"requests": 0, "completions": 0, "streams": 0, "choices": 0,
                      "by_status": {}, "by_path": {}, "faults": {},
                      "prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0,
                      "max_in_flight": self.in_flight, "bytes": 0}

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def cache_hit(self, key: str) -> bool:
        with self.lock:
            hit = key in self.seen_prompts
            if not hit:
                if len(self.seen_prompts) > 200000:
                    self.seen_prompts.clear()
                self.seen_prompts.add(key)
            return hit

    def record(self, entry: dict, usage: dict | None) -> None:
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.requests.append(entry)
            del self.requests[:-20000]          # bound memory on long benchmarks
            s = self.stats
            s["requests"] += 1
            st = str(entry["status"])
            s["by_status"][st] = s["by_status"].get(st, 0) + 1
            s["by_path"][entry["path"]] = s["by_path"].get(entry["path"], 0) + 1
            s["bytes"] += entry["bytes"]
            for f in entry["faults"]:
                k = f.split(":", 1)[0]
                s["faults"][k] = s["faults"].get(k, 0) + 1
            if entry.get("completion"):
                s["completions"] += 1
                s["choices"] += entry.get("n") or 1
                if entry.get("stream"):
                    s["streams"] += 1
            if usage:
                s["prompt_tokens"] += usage["prompt_tokens"]
                s["completion_tokens"] += usage["completion_tokens"]
                s["reasoning_tokens"] += usage["completion_tokens_details"]["reasoning_tokens"]


# --------------------------------------------------------------------------
# The deterministic "model"
# --------------------------------------------------------------------------

@dataclass
class Choice:
    index: int
    reasoning: str          # the (possibly truncated) chain of thought; "" in mode none
    answer: str             # the (possibly truncated) answer text
    content: str            # what goes in message.content for the mode
    finish: str             # "stop" or "length"
    reasoning_tokens: int
    completion_tokens: int
    r_done: bool = True     # the reasoning was not cut by max_tokens


def answer_number(problem: str) -> str:
    m = re.search(r"answer\s*[=:]\s*(-?\d+)", problem, re.I)
    if m:
        return m.group(1)
    m = re.search(r"-?\d+", problem)
    return m.group(0) if m else "42"


# A grader's reply, for tests of an LLM judge: a problem (the grading
# prompt) holding "grade=KIND" gets this answer instead of the boxed number.
GRADES = {
    "correct": "The candidate's final answer agrees with the reference answer.\nVERDICT: CORRECT",
    "incorrect": "The candidate's final answer differs from the reference answer.\nVERDICT: INCORRECT",
    "garbage": "I cannot tell whether this answer is right.",
    "double": "VERDICT: CORRECT\nOn second thought the sign is wrong.\nVERDICT: INCORRECT",
}


def answer_text(problem: str) -> str:
    m = re.search(r"grade=(correct|incorrect|garbage|double)\b", problem)
    if m:
        return GRADES[m.group(1)]
    return "The answer is \\boxed{" + answer_number(problem) + "}."


def make_choice(index: int, variant: int, problem: str, rlen: int, mode: str,
                max_tokens: int | None) -> Choice:
    h = sha1(problem)[:8]
    wide = re.search(r"[^\x00-\x7f]", problem)
    # A prompt with a non-ASCII character gets it quoted in the reasoning,
    # so that a test can have a multi-byte character split across tokens.
    unit = f"Reasoning about: {h} #{variant} ({wide.group(0)}). " if wide else f"Reasoning about: {h} #{variant}. "
    full_r = "" if mode == "none" else (unit * math.ceil(rlen / len(unit)))[:rlen].rstrip()
    full_a = answer_text(problem)
    R, A = words(full_r), words(full_a)
    if max_tokens is None:
        keep_r, keep_a = R, A
    else:
        keep_r = min(R, max_tokens)
        keep_a = min(A, max_tokens - keep_r)
    reasoning, answer = take_words(full_r, keep_r), take_words(full_a, keep_a)
    finish = "length" if (keep_r < R or keep_a < A) else "stop"
    r_done = keep_r == R
    if mode == "think":
        content = "<think>\n" + reasoning + ("\n</think>\n\n" + answer if r_done else "")
    elif mode == "think-open":
        content = reasoning + ("\n</think>\n\n" + answer if r_done else "")
    else:
        content = answer
    return Choice(index, reasoning, answer, content, finish, keep_r, keep_r + keep_a, r_done)


def pieces(text: str, k: int = STREAM_WORDS) -> list[str]:
    """Split text into deltas of k words each; "".join(pieces) == text."""
    toks = re.findall(r"\S+\s*|\s+", text)
    return ["".join(toks[i:i + k]) for i in range(0, len(toks), k)]


# --------------------------------------------------------------------------
# Log-probabilities (logprobs: true, top_logprobs: K)
# --------------------------------------------------------------------------

THINK_CLOSE = "\n</think>\n\n"   # what a reasoning parser takes out of the text


def deltas(c: Choice, mode: str, tags: bool) -> list[tuple[dict, str]]:
    """The text deltas of a choice, each with the raw completion text that it
    stands for (the tokens it carries).  In mode field the `</think>` that
    the reasoning parser took out comes as a delta of no text (only when
    `tags`: logprobs were asked for)."""
    if mode != "field":
        return [({"content": p}, p) for p in pieces(c.content)]
    out = [({"content": None, "reasoning_content": p}, p) for p in pieces(c.reasoning)]
    if tags and c.r_done:
        out.append(({"content": None, "reasoning_content": None}, THINK_CLOSE))
    return out + [({"content": p, "reasoning_content": None}, p) for p in pieces(c.answer)]


def tokenize(text: str) -> list[bytes]:
    """The mock's tokens of a piece of text (a delta: tokens never cross
    deltas, so a stream's chunks carry whole tokens): the think tags whole, words in
    runs of at most 4 letters (a leading space kept, as byte-level BPE
    does), digits, runs of white space, and any other character alone, but a
    non-ASCII one cut after its first byte: the two tokens are each invalid
    UTF-8, as real tokenizers cut rare characters.  b"".join(...) == the
    text's UTF-8."""
    out: list[bytes] = []
    for m in re.finditer(r"</?think>| ?[A-Za-z]{1,4}| ?\d|\s+|.", text, re.S):
        b = m.group(0).encode("utf-8")
        if not b.isascii():
            cut = len(b) - len(m.group(0)[-1].encode("utf-8")) + 1
            out += [b[:cut], b[cut:]]
        else:
            out.append(b)
    return out


def token_text(b: bytes) -> str:
    """The `token` string of a token's bytes: U+FFFD for what is not UTF-8."""
    return b.decode("utf-8", "replace")


def lp_entries(tokens: list[bytes], variant: int, k: int, bad: dict, start: int = 0) -> list[dict]:
    """The logprobs.content entries of tokens, the first of them the
    start-th of its choice.  The chosen token's
    probability and k alternatives are made from a hash of (variant, its
    place, its bytes): the top list falls off geometrically (its sum stays
    below 1), most probable first, and the chosen token is the first of it,
    the second, or (sampled) none of it, with a log-probability below all
    of them.  `bad` holds the faults: toplogprobs (at most N alternatives),
    fffd (bytes are the UTF-8 of `token`, as vLLM writes them)."""
    cap = bad.get("toplogprobs")
    fffd = "fffd" in bad
    out = []
    for i, tb in enumerate(tokens, start):
        h = int(sha1(f"{variant}:{i}:{tb.hex()}")[:12], 16)
        p0 = 0.35 + 0.6 * ((h % 10007) / 10007)
        probs = [p0] + [(1 - p0) * 0.5 ** j for j in range(1, k + 1)]
        alts = [tb] + [tb + bytes([0x80 + j]) if not tb.isascii() else tb + chr(97 + j).encode()
                       for j in range(1, k + 1)]
        rank = (h >> 20) % 3
        if rank == 1 and k >= 2:            # the second most probable was drawn
            alts[0], alts[1] = alts[1], alts[0]
            chosen = (tb, probs[1])
        elif rank == 2:                     # drawn from below the top k
            chosen = (tb, (1 - p0) * 0.5 ** (k + 1))
            alts[0] = tb + b"~"
        else:
            chosen = (tb, p0)

        def entry(b: bytes, p: float) -> dict:
            t = token_text(b)
            return {"token": t, "logprob": math.log(p),
                    "bytes": list(t.encode("utf-8")) if fffd else list(b)}

        top = [entry(b, p) for b, p in zip(alts[:k], probs[:k])]
        if cap is not None:
            top = top[:cap]
        out.append(dict(entry(*chosen), top_logprobs=top))
    return out


# --------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------

class Handler(DispatchingHandler):
    # HTTP/1.1 keep-alive, as the real APIs do (libcurl reuses connections).
    protocol_version = "HTTP/1.1"
    server_version = "ds-openai-mock/1.0"
    st: State  # set on the subclass made by make_server()

    # ---- plumbing -------------------------------------------------------

    def _dispatch(self) -> None:
        t0, control = self._begin()
        self.info: dict = {}
        self.usage: dict | None = None
        self.control, self.recorded, self.t0 = control, False, t0
        body_text = self.req_body.decode("utf-8", "replace")
        self.body_texts = (body_text,)
        self.completed = False
        try:
            obj = json.loads(body_text) if body_text else None
        except ValueError:
            obj = None
        if isinstance(obj, dict) and not control:
            # Best effort, so that even a refused request shows what it asked for.
            self.info = {k: obj.get(k) for k in ("model", "n", "stream", "max_tokens",
                                                 "temperature")}
            if isinstance(obj.get("messages"), list):
                ms = [m for m in obj["messages"] if isinstance(m, dict)]
                joined = "\n".join(content_text(m.get("content")) for m in ms)
                self.body_texts = (body_text, joined)
                users = [content_text(m.get("content")) for m in ms if m.get("role") == "user"]
                if users:
                    self.info["user_sha1"] = sha1(users[0])
                    self.info["last_user_sha1"] = sha1(users[-1])
        if not control:
            self.st.enter()
        try:
            if control:
                self._control()
            elif not self._pre_faults():
                self._route()
        except Reply as r:
            self._error(r)
        except Cut:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:                                  # noqa: BLE001
            log("internal error: " + "".join(traceback.format_exception(e)).rstrip())
            if not self.headers_done:
                self._json(500, {"error": {"message": f"mock server internal error: {e}",
                                           "type": "server_error", "param": None,
                                           "code": "internal_error"}})
            self.close_connection = True
        finally:
            self._finalize(0)
            ms = (time.monotonic() - t0) * 1000
            auth = self._auth_state()
            if not self.st.cfg.quiet:
                # Only the auth *state* is ever logged, never the header value.
                extra = ""
                if self.completed:
                    extra = (f" n={self.info.get('n')} stream={int(bool(self.info.get('stream')))}"
                             f" mode={self.info.get('mode')}")
                log(f'{self.client_address[0]} "{self.command} {self.path}" {self.status} '
                    f'{self.sent}B {ms:.1f}ms auth={auth}{extra} '
                    f'faults={",".join(self.fault_names) or "-"}')

    def _finalize(self, pending: int) -> None:
        """Record the request (log, stats, in-flight count) once.  Called just
        BEFORE the last write of a complete response, so a client that has
        seen the whole reply always finds it in /_debug/requests; otherwise
        (errors, cuts) when the handler ends."""
        if self.recorded:
            return
        self.recorded = True
        if self.control:
            return
        entry = {"t": round(time.monotonic() - START, 4), "time": round(time.time(), 3),
                 "method": self.command, "path": self.path, "status": self.status,
                 "auth": self._auth_state(), "faults": self.fault_names,
                 "bytes": self.sent + pending,
                 "ms": round((time.monotonic() - self.t0) * 1000, 2), "completion": self.completed}
        entry.update(self.info)
        self.st.leave()
        self.st.record(entry, self.usage)

    def _auth_state(self) -> str:
        h = self.headers.get("Authorization")
        if not h:
            return "none"
        key = self.st.cfg.api_key
        if key is None:
            return "present"
        return "ok" if hmac.compare_digest(h.encode(), f"Bearer {key}".encode()) else "wrong"

    def _start(self, status: int, headers: dict, length: int | None, body: bytes = b"") -> None:
        """Status line and headers; length None means chunked.  `body` (the
        start of the body) goes out in the same write as the headers: one
        syscall per small response keeps 512 concurrent clients fast."""
        self.status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self._headers_buffer.append(b"\r\n")
        if length is not None and (len(body) == length or self.command == "HEAD"):
            self._finalize(len(body))       # this write completes the response
        self.wfile.write(b"".join(self._headers_buffer) + body)
        self._headers_buffer = []
        self.sent += len(body)
        self.headers_done = True

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        h = {"Content-Type": ctype}
        h.update(headers or {})
        self._start(status, h, len(body), b"" if self.command == "HEAD" else body)

    def _json(self, status: int, obj, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                   "application/json", headers)

    def _error(self, r: Reply) -> None:
        self._json(r.status, {"error": {"message": r.message, "type": r.etype,
                                        "param": r.param, "code": r.code}}, r.headers)

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.sent += len(data)

    # ---- faults ---------------------------------------------------------

    def _pre_faults(self) -> bool:
        """--latency-ms, delays and canned error statuses; True if answered."""
        if self.st.cfg.latency_ms > 0:
            time.sleep(self.st.cfg.latency_ms / 1000.0)
        for rule in self.st.faults.matching(self.path, PRE_KINDS, self.body_texts):
            if not self.st.faults.claim(rule):
                continue
            k = rule.kind
            if k == "latency":
                self.fault_names.append(f"latency:{rule.num(0, 100):g}")
                time.sleep(rule.num(0, 100) / 1000.0)
            elif k == "slow":
                self.fault_names.append(f"slow:{rule.num(0, 1):g}")
                time.sleep(rule.num(0, 1))
            elif k == "429":
                secs = rule.num(0, 1)
                self.fault_names.append(f"429:{secs:g}")
                msg, et, code = FAULT_ERRORS[429]
                raise Reply(429, msg, et, code, headers={"Retry-After": f"{secs:g}"})
            elif k in ("502", "504"):
                s = int(k)
                self.fault_names.append(k)
                body = GATEWAY_HTML.format(s=s, m=GATEWAY[s]).encode()
                self._send(s, body, "text/html")
                return True
            else:
                s = int(k)
                self.fault_names.append(k)
                msg, et, code = FAULT_ERRORS[s]
                raise Reply(s, msg, et, code)
        return False

    def _lp_faults(self) -> dict:
        """The bad-teacher faults of a request that asked for logprobs:
        {"nologprobs": True, "toplogprobs": N, "fffd": True}, as matched."""
        out: dict = {}
        for rule in self.st.faults.matching(self.path, LP_KINDS, self.body_texts):
            if rule.kind not in out and self.st.faults.claim(rule):
                out[rule.kind] = int(rule.num(0, 0)) if rule.kind == "toplogprobs" else True
                self.fault_names.append(rule.kind + (f":{out[rule.kind]}" if rule.kind == "toplogprobs" else ""))
        return out

    def _body_faults(self) -> dict:
        out: dict = {}
        for rule in self.st.faults.matching(self.path, BODY_KINDS, self.body_texts):
            if rule.kind in out:
                continue
            if rule.kind == "cut":
                out["cut"] = rule           # claimed only if it really cuts
            elif self.st.faults.claim(rule):
                out[rule.kind] = rule
        return out

    # ---- routing --------------------------------------------------------

    def _route(self) -> None:
        p = self.rawpath.rstrip("/") or "/"
        if p in ("/v1/models", "/models") or p.startswith(("/v1/models/", "/models/")):
            if self.command not in ("GET", "HEAD"):
                raise Reply(405, "Method Not Allowed")
            self._check_auth()
            m = {"id": self.st.cfg.model, "object": "model", "owned_by": "deepseek"}
            if p in ("/v1/models", "/models"):
                return self._ok_json({"object": "list", "data": [m]}, {})
            want = urllib.parse.unquote(p.split("/models/", 1)[1])
            if want != self.st.cfg.model:
                raise Reply(404, f"The model `{want}` does not exist", code="model_not_found",
                            param="model")
            return self._ok_json(m, {})
        if p in ("/v1/chat/completions", "/chat/completions"):
            if self.command != "POST":
                raise Reply(405, "Method Not Allowed")
            self._check_auth()
            return self._completion()
        raise Reply(404, f"Not Found: {self.rawpath}", code="not_found")

    def _check_auth(self) -> None:
        if self.st.cfg.api_key is None:
            return
        if self._auth_state() != "ok":
            msg, et, code = FAULT_ERRORS[401]
            if self.st.cfg.echo_auth:  # as careless servers do
                msg = f"{msg}: got '{self.headers.get('Authorization')}'"
            raise Reply(401, msg, et, code)

    # ---- chat completions ----------------------------------------------

    def _parse(self) -> dict:
        def bad(msg: str, param: str | None = None):
            raise Reply(400, msg, param=param)

        try:
            body = json.loads(self.req_body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            bad(f"Failed to parse the request body as JSON: {e}")
        if not isinstance(body, dict):
            bad("The request body must be a JSON object")
        if not isinstance(body.get("model"), str) or not body["model"]:
            bad("Missing required parameter: 'model'", "model")
        msgs = body.get("messages")
        if msgs is None:
            bad("Missing required parameter: 'messages'", "messages")
        if not isinstance(msgs, list) or not msgs:
            bad("'messages' must be a non-empty array", "messages")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in (
                    "system", "user", "assistant", "tool", "developer"):
                bad(f"messages[{i}]: bad message or role", f"messages[{i}].role")
            c = m.get("content")
            if not (isinstance(c, (str, list)) or (c is None and m["role"] == "assistant")):
                bad(f"messages[{i}]: 'content' must be a string or an array",
                    f"messages[{i}].content")
            if "reasoning_content" in m:
                # As the DeepSeek API does: earlier CoT must not be sent back.
                bad(f"messages[{i}]: reasoning_content is not allowed in input messages",
                    f"messages[{i}].reasoning_content")

        def opt_int(name: str, lo: int, hi: int):
            v = body.get(name)
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                bad(f"'{name}' must be an integer in [{lo}, {hi}]", name)
            return v

        n = opt_int("n", 1, MAX_N) or 1
        max_tokens = opt_int("max_tokens", 1, 1 << 30)
        if max_tokens is None:
            max_tokens = opt_int("max_completion_tokens", 1, 1 << 30)
        temp = body.get("temperature")
        if temp is not None and (isinstance(temp, bool) or not isinstance(temp, (int, float))
                                 or not 0 <= temp <= 2):
            bad("'temperature' must be a number in [0, 2]", "temperature")
        stream = body.get("stream", False)
        if not isinstance(stream, bool) and stream is not None:
            bad("'stream' must be a boolean", "stream")
        so = body.get("stream_options")
        if so is not None and not isinstance(so, dict):
            bad("'stream_options' must be an object", "stream_options")
        if so and not stream:
            bad("'stream_options' is only allowed when 'stream' is true", "stream_options")
        lp = body.get("logprobs")
        if lp is not None and not isinstance(lp, bool):
            bad("'logprobs' must be a boolean", "logprobs")
        top = opt_int("top_logprobs", 0, 20)
        if top is not None and not lp:
            # OpenAI's rule: top_logprobs needs logprobs true.
            bad("'top_logprobs' requires 'logprobs' to be true", "top_logprobs")
        rlen = body.get("x_reasoning_len")
        if rlen is None and self.headers.get("X-Test-Len"):
            try:
                rlen = int(self.headers["X-Test-Len"])
            except ValueError:
                bad("X-Test-Len must be an integer")
        if rlen is None:
            rlen = DEFAULT_REASONING_LEN
        if isinstance(rlen, bool) or not isinstance(rlen, int) or not 0 <= rlen <= MAX_REASONING_LEN:
            bad(f"x_reasoning_len must be an integer in [0, {MAX_REASONING_LEN}]", "x_reasoning_len")
        mode = (self.headers.get("X-Test-Reasoning") or self.st.cfg.reasoning).strip().lower()
        if mode not in MODES:
            bad(f"X-Test-Reasoning must be one of {', '.join(MODES)}")
        users = [content_text(m.get("content")) for m in msgs if m.get("role") == "user"]
        return {"body": body, "messages": msgs, "n": n, "max_tokens": max_tokens,
                "temperature": temp, "stream": bool(stream),
                "include_usage": bool(so and so.get("include_usage")), "rlen": rlen,
                "mode": mode, "logprobs": bool(lp), "top_logprobs": top or 0,
                "first_user": users[0] if users else "",
                "last_user": users[-1] if users else ""}

    def _completion(self) -> None:
        q = self._parse()
        self.completed = True
        self.info = {"model": q["body"]["model"], "n": q["n"], "stream": q["stream"],
                     "include_usage": q["include_usage"], "max_tokens": q["max_tokens"],
                     "temperature": q["temperature"], "mode": q["mode"],
                     "reasoning_len": q["rlen"], "logprobs": q["logprobs"],
                     "top_logprobs": q["top_logprobs"],
                     "user_sha1": sha1(q["first_user"]), "last_user_sha1": sha1(q["last_user"])}
        greedy = q["temperature"] is not None and q["temperature"] == 0
        variants = [0 if greedy else i for i in range(q["n"])]
        choices = [make_choice(i, v, q["last_user"], q["rlen"], q["mode"], q["max_tokens"])
                   for i, v in enumerate(variants)]
        q["variants"] = variants
        prompt_tokens = sum(words(content_text(m.get("content"))) for m in q["messages"])
        key = sha1(json.dumps(q["messages"], sort_keys=True, ensure_ascii=False))
        hit = prompt_tokens if self.st.cache_hit(key) else 0
        comp = sum(c.completion_tokens for c in choices)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": comp,
                 "total_tokens": prompt_tokens + comp,
                 "prompt_tokens_details": {"cached_tokens": hit},
                 "completion_tokens_details": {"reasoning_tokens":
                                               sum(c.reasoning_tokens for c in choices)},
                 "prompt_cache_hit_tokens": hit, "prompt_cache_miss_tokens": prompt_tokens - hit}
        self.usage = usage
        self.info["finish_reasons"] = [c.finish for c in choices]
        rid = str(uuid.uuid4())
        created = int(time.time())
        faults = self._body_faults()
        q["lp_bad"] = self._lp_faults() if q["logprobs"] else {}
        if q["stream"]:
            return self._stream(q, choices, usage, rid, created, faults)
        msgs = []
        for c, variant in zip(choices, variants):
            msg = {"role": "assistant", "content": c.content}
            if q["mode"] == "field":
                msg["reasoning_content"] = c.reasoning
            lp = None
            if q["logprobs"] and "nologprobs" not in q["lp_bad"]:
                toks = [t for _, p in deltas(c, q["mode"], True) for t in tokenize(p)]
                lp = {"content": lp_entries(toks, variant, q["top_logprobs"], q["lp_bad"]),
                      "refusal": None}
            msgs.append({"index": c.index, "message": msg, "logprobs": lp,
                         "finish_reason": c.finish})
        obj = {"id": rid, "object": "chat.completion", "created": created,
               "model": self.st.cfg.model, "choices": msgs, "usage": usage,
               "system_fingerprint": FINGERPRINT}
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        if "malformed" in faults:
            self.fault_names.append("malformed")
            body = body[:max(1, len(body) // 2)].rstrip(b"}") + b',"choices":[{'
        self._ok_body(body, "application/json", faults, {"X-Request-Id": rid})

    def _ok_json(self, obj, faults: dict) -> None:
        self._ok_body(json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json",
                      faults, {})

    def _cut_limit(self, faults: dict, total: int) -> int | None:
        rule = faults.get("cut")
        if rule is None:
            return None
        limit = int(rule.num(0, total // 2))
        if limit >= total or not self.st.faults.claim(rule):
            return None
        self.fault_names.append(f"cut:{limit}")
        return limit

    def _queue(self, faults: dict, beat: bytes) -> None:
        rule = faults["queue"]
        secs, every = rule.num(0, 1), rule.num(1, 0.5) or 0.5
        self.fault_names.append(f"queue:{secs:g}")
        end = time.monotonic() + secs
        while True:
            self._chunk(beat)
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(every, left))

    def _ok_body(self, body: bytes, ctype: str, faults: dict, headers: dict) -> None:
        """A 200 body: plain (Content-Length) or, when queued, chunked with
        blank keep-alive lines first; `cut` hangs up after BYTES of it."""
        h = dict(headers, **{"Content-Type": ctype})
        if self.command == "HEAD":
            return self._start(200, h, len(body))
        limit = self._cut_limit(faults, len(body))
        if "queue" not in faults:
            # With a cut, the headers promise the whole length; hanging up
            # early is what a dropped connection looks like to the client.
            self._start(200, h, len(body), body if limit is None else body[:limit])
            if limit is not None:
                raise Cut()
            return
        self._start(200, h, None)
        self._queue(faults, b"\n")
        if limit is not None:
            self._chunk(body[:limit])
            raise Cut()
        self._finalize(len(body))
        self._chunk(body)
        self.wfile.write(b"0\r\n\r\n")

    def _stream(self, q: dict, choices: list[Choice], usage: dict, rid: str, created: int,
                faults: dict) -> None:
        mode, inc = q["mode"], q["include_usage"]

        def ev(chs: list[dict], extra: dict | None = None) -> bytes:
            obj = {"id": rid, "object": "chat.completion.chunk", "created": created,
                   "model": self.st.cfg.model, "system_fingerprint": FINGERPRINT, "choices": chs}
            if inc:
                obj["usage"] = None
            if extra:
                obj.update(extra)
            return b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n"

        def ch(i: int, delta: dict, finish=None, lp=None) -> dict:
            return {"index": i, "delta": delta, "logprobs": lp, "finish_reason": finish}

        want_lp = q["logprobs"] and "nologprobs" not in q["lp_bad"]

        events: list[bytes] = []
        first = {"role": "assistant", "content": ""}
        if mode == "field":
            first = {"role": "assistant", "content": None, "reasoning_content": ""}
        events += [ev([ch(c.index, dict(first))]) for c in choices]
        # Deltas of all choices interleaved, as OpenAI does for n > 1.
        per = [deltas(c, mode, q["logprobs"]) for c in choices]
        at = [0] * len(choices)     # tokens sent so far, per choice (for the hash)
        for k in range(max((len(d) for d in per), default=0)):
            for n, (c, ds) in enumerate(zip(choices, per)):
                if k < len(ds):
                    lp = None
                    if want_lp:     # numbered as in the non-streaming reply
                        toks = tokenize(ds[k][1])
                        lp = {"content": lp_entries(toks, q["variants"][n], q["top_logprobs"],
                                                    q["lp_bad"], at[n])}
                        at[n] += len(toks)
                    events.append(ev([ch(c.index, ds[k][0], lp=lp)]))
        if "malformed" in faults:
            self.fault_names.append("malformed")
            events.append(b'data: {"id": "' + rid.encode() + b'", "choices": [{"delta": '
                          b'{"content": "oops"\n\n')
        for c in choices:
            events.append(ev([ch(c.index, {}, c.finish)]))
        if inc:
            events.append(ev([], {"usage": usage}))
        events.append(b"data: [DONE]\n\n")

        total = sum(len(e) for e in events)
        limit = self._cut_limit(faults, total)
        self._start(200, {"Content-Type": "text/event-stream; charset=utf-8",
                          "Cache-Control": "no-cache", "X-Request-Id": rid}, None)
        if self.command == "HEAD":
            return
        if "queue" in faults:
            self._queue(faults, b": keep-alive\n\n")
        drip = faults.get("drip")
        gap = drip.num(0, 50) / 1000.0 if drip else 0.0
        if drip:
            self.fault_names.append(f"drip:{drip.num(0, 50):g}")
        pos = 0
        for i, e in enumerate(events):
            if gap and i:
                time.sleep(gap)
            if limit is not None and pos + len(e) >= limit:
                self._chunk(e[:limit - pos])
                raise Cut()
            if i == len(events) - 1:
                self._finalize(len(e))
            self._chunk(e)
            pos += len(e)
        self.wfile.write(b"0\r\n\r\n")

    # ---- control --------------------------------------------------------

    def _control(self) -> None:
        p, m = self.rawpath.rstrip("/"), self.command
        st = self.st
        if p == "/_faults":
            out = st.faults.control(m, self.req_body)
            if isinstance(out, str):
                raise Reply(400, out)
            if out is not None:
                return self._json(200, out)
        elif p in ("/_debug/requests", "/_debug/stats"):
            with st.lock:
                if m == "DELETE":
                    n = len(st.requests)
                    st.requests.clear()
                    st.seen_prompts.clear()
                    st.reset_stats()
                    out = {"cleared": n}
                elif p == "/_debug/requests":
                    since = int(self.query.get("since", ["0"])[0] or 0)
                    out = {"requests": [r for r in st.requests if r["seq"] > since]}
                else:
                    out = json.loads(json.dumps(st.stats))
                    out["in_flight"] = st.in_flight
            return self._json(200, out)
        elif p == "/_debug/health" and m in ("GET", "HEAD"):
            return self._json(200, {"ok": True, "port": self.server.server_address[1],
                                    "model": st.cfg.model, "reasoning": st.cfg.reasoning,
                                    "auth": st.cfg.api_key is not None})
        raise Reply(404, "Not Found", code="not_found")


class BigServer(Server):
    request_queue_size = 4096   # listen backlog: 512+ clients connect at once


def make_server(cfg: Config, port: int = 0) -> tuple[BigServer, State]:
    st = State(cfg)
    handler = type("BoundHandler", (Handler,), {"st": st})
    return BigServer(("127.0.0.1", port), handler), st


def main(argv: list[str] | None = None) -> int:
    life = Life()
    ap = argparse.ArgumentParser(description="Mock OpenAI-compatible chat-completions server "
                                             "for tests (see tests/servers/README.md).")
    Life.add_args(ap)
    ap.add_argument("--latency-ms", type=float, default=0,
                    help="delay every API request by this many ms before answering")
    ap.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (401 otherwise)")
    ap.add_argument("--echo-auth", action="store_true",
                    help="the 401's message quotes the Authorization header received (a hostile server)")
    ap.add_argument("--reasoning", choices=MODES, default="field",
                    help="how the chain of thought is delivered (default field = reasoning_content)")
    ap.add_argument("--model", default="deepseek-reasoner",
                    help="model name reported in every reply (default deepseek-reasoner)")
    a = ap.parse_args(argv)
    if a.latency_ms < 0:
        ap.error("--latency-ms must be >= 0")
    try:
        rules = Faults(KINDS).parse_spec(a.faults)
    except (ValueError, re.error) as e:
        ap.error(f"--faults: {e}")
    cfg = Config(model=a.model, api_key=a.api_key, echo_auth=a.echo_auth, reasoning=a.reasoning,
                 latency_ms=a.latency_ms, quiet=a.quiet)
    server, st = make_server(cfg, a.port)
    st.faults.replace(rules)
    return life.serve(server, a, log, f"model={a.model} reasoning={a.reasoning} "
                      f"auth={'on' if a.api_key else 'off'} latency-ms={a.latency_ms:g} faults={len(rules)}")


if __name__ == "__main__":
    sys.exit(main())
