"""What the test servers (hub.py, openai.py) have in common.

  * fault rules: `path_regex:kind[:arg...][@count]`, a table of kinds per
    server, rules used up only when they change a response, and the
    /_faults control endpoint that reads, replaces and clears them;
  * a request handler base that sends every method to one _dispatch;
  * the threaded server on loopback, and the life of a server process:
    signals first, the port file written atomically once listening,
    --max-seconds, a clean exit 0 on SIGTERM/SIGINT with the port file gone.

Only the Python 3.11 standard library is used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Logger:
    """One line per message on stderr, prefixed with the server's name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()

    def __call__(self, msg: str) -> None:
        with self.lock:
            sys.stderr.write(f"{self.name}: {msg}\n")
            sys.stderr.flush()


# --------------------------------------------------------------------------
# Fault rules
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    max_args: int
    number: type = float    # float or int: what each argument must parse as
    min_args: int = 0


@dataclass
class Rule:
    pattern: str
    kind: str
    args: list[str] = field(default_factory=list)
    remaining: int | None = None      # None: fires forever
    fired: int = 0

    def check(self, kinds: dict[str, Kind]) -> "Rule":
        """Validate against a server's kinds now, so a bad spec fails when it
        is given rather than in the middle of some unrelated request."""
        k = kinds.get(self.kind)
        if k is None:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if len(self.args) > k.max_args:
            raise ValueError(f"too many arguments for {self.kind}: {self.args}")
        if len(self.args) < k.min_args:
            raise ValueError(f"{self.kind} needs {k.min_args} argument(s)")
        if self.remaining is not None and int(self.remaining) < 0:
            raise ValueError("@count must be >= 0")
        for a in self.args:
            if a != "" and k.number(a) < 0:
                raise ValueError(f"{self.kind}: negative argument")
        # "body=REGEX" matches the request body instead of the target.
        self.on_body = self.pattern.startswith("body=")
        self.regex = re.compile(self.pattern[5:] if self.on_body else self.pattern)
        return self

    def num(self, i: int, default: float) -> float:
        return float(self.args[i]) if len(self.args) > i and self.args[i] != "" else default

    def matches(self, target: str, body_texts: tuple[str, ...]) -> bool:
        if self.on_body:
            return any(t and self.regex.search(t) for t in body_texts)
        return bool(self.regex.search(target))

    def as_dict(self) -> dict:
        return {"path": self.pattern, "kind": self.kind, "args": self.args,
                "remaining": self.remaining, "fired": self.fired}


class Faults:
    """The rules in force, for one server's table of kinds."""

    def __init__(self, kinds: dict[str, Kind]) -> None:
        self.kinds = kinds
        self.lock = threading.Lock()
        self.rules: list[Rule] = []

    def parse_rule(self, text: str) -> Rule:
        """One `path_regex:kind[:arg...][@count]`. The regex may itself hold
        ':', so the kind is the left-most token after the first that is a
        known kind with no more arguments after it than it takes: in
        "chat:latency:400" the kind is latency, not the status 400."""
        text = text.strip()
        count = None
        m = re.search(r"@(\d+)$", text)
        if m:
            count = int(m.group(1))
            text = text[:m.start()]
        toks = text.split(":")
        for i in range(1, len(toks)):
            k = self.kinds.get(toks[i])
            if k is not None and len(toks) - i - 1 <= k.max_args:
                return Rule(":".join(toks[:i]), toks[i], toks[i + 1:], count).check(self.kinds)
        raise ValueError(f"bad fault rule {text!r}: want path_regex:kind[:arg][@count]")

    def parse_spec(self, spec: str) -> list[Rule]:
        return [self.parse_rule(r) for r in spec.split(",") if r.strip()]

    def parse_body(self, raw: bytes) -> tuple[list[Rule], bool]:
        """A POST /_faults body: {"spec": ...}, {"rules": [...]}, or a bare
        JSON string; returns the rules and whether to append them."""
        body = json.loads(raw or b"{}")
        if isinstance(body, str):
            body = {"spec": body}
        rules = self.parse_spec(body.get("spec", ""))
        for r in body.get("rules", []):
            args = r.get("args")
            if args is None:
                args = [] if r.get("arg") is None else [str(r["arg"])]
            rules.append(Rule(r.get("path", ""), str(r["kind"]), [str(a) for a in args],
                              r.get("count")).check(self.kinds))
        return rules, bool(body.get("append"))

    def control(self, method: str, raw: bytes) -> dict | str | None:
        """The /_faults endpoint: GET shows, DELETE clears, POST/PUT replace
        (or append). Returns the state to answer with, an error message for
        a 400, or None for a method it does not take."""
        if method in ("POST", "PUT"):
            try:
                rules, append = self.parse_body(raw)
            except (ValueError, KeyError, TypeError, AttributeError, re.error) as e:
                return f"bad fault spec: {e}"
            self.replace(rules, append)
        elif method == "DELETE":
            self.replace([])
        elif method != "GET":
            return None
        return self.state()

    def replace(self, rules: list[Rule], append: bool = False) -> None:
        with self.lock:
            self.rules = (self.rules + rules) if append else rules

    def matching(self, target: str, kinds: set[str], body_texts: tuple[str, ...] = ()) -> list[Rule]:
        with self.lock:
            return [r for r in self.rules if r.kind in kinds and
                    (r.remaining is None or r.remaining > 0) and r.matches(target, body_texts)]

    def claim(self, rule: Rule) -> bool:
        """Use up one firing of `rule`; False if it ran out meanwhile.

        Rules are only claimed when they actually change a response, so e.g.
        `cut@1` is not wasted on a HEAD that has no body.
        """
        with self.lock:
            if rule.remaining is not None:
                if rule.remaining <= 0:
                    return False
                rule.remaining -= 1
            rule.fired += 1
            return True

    def state(self) -> dict:
        with self.lock:
            return {"rules": [r.as_dict() for r in self.rules]}


# --------------------------------------------------------------------------
# Handler and server
# --------------------------------------------------------------------------

class DispatchingHandler(BaseHTTPRequestHandler):
    """Every method to self._dispatch(); no default access log (the servers
    write their own line per request)."""

    def log_message(self, fmt, *args):
        pass

    def _begin(self) -> tuple[float, bool]:
        """What every request starts with: the counters its log line reports,
        the body drained (so a kept-alive connection stays in step), the
        path and query split. Returns (start time, whether the request is
        for the /_faults or /_debug control endpoints)."""
        t0 = time.monotonic()
        self.status = 0
        self.sent = 0
        self.fault_names: list[str] = []
        self.headers_done = False
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        self.req_body = self.rfile.read(n) if n > 0 else b""
        split = urllib.parse.urlsplit(self.path)
        self.rawpath = split.path
        self.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        return t0, self.rawpath.startswith(("/_faults", "/_debug"))

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()


class Server(ThreadingHTTPServer):
    daemon_threads = True       # a hung client must not block shutdown
    allow_reuse_address = True
    request_queue_size = 64


class Life:
    """A server process's life. Made first thing in main(), so that a test
    that signals the server early still gets a clean exit."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.why = "max-seconds reached"
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum, _frame) -> None:
        self.why = signal.Signals(signum).name
        self.stop.set()

    @staticmethod
    def add_args(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 = any free one")
        ap.add_argument("--port-file", help="write the port here (atomically) once listening")
        ap.add_argument("--faults", default="", help="fault rules: path_regex:kind[:arg][@count],...")
        ap.add_argument("--max-seconds", type=float, default=600, help="exit after this long (default 600)")
        ap.add_argument("--quiet", action="store_true", help="no per-request log lines")

    def serve(self, server: Server, a: argparse.Namespace, log: Logger, banner: str) -> int:
        """Serve until a signal or --max-seconds; returns the exit status."""
        port = server.server_address[1]
        # serve_forever runs in a thread so that this one can wait for the
        # signal or the deadline and call shutdown() (which would deadlock
        # if called from the serving thread itself).
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        t.start()
        if a.port_file:
            tmp = f"{a.port_file}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(f"{port}\n")
            os.replace(tmp, a.port_file)       # readers never see a half-written file
        log(f"listening on http://127.0.0.1:{port} {banner} max-seconds={a.max_seconds:g}")
        self.stop.wait(a.max_seconds)
        log(f"stopping ({self.why})")
        server.shutdown()
        server.server_close()
        if a.port_file:
            try:
                os.unlink(a.port_file)
            except OSError:
                pass
        return 0
