"""What the test servers' self-tests (test_hub.py, test_openai.py) share:
the ok/FAIL lines and their count, urllib requests, and a server run as a
process of its own on a free loopback port. Only the Python standard library is used."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

# No test may reach the internet, and a proxy must not swallow 127.0.0.1.
for _v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
    os.environ.pop(_v, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

counts = {"passed": 0, "failed": 0}


def check(name: str, cond, detail="") -> bool:
    if cond:
        counts["passed"] += 1
        print(f"ok   - {name}")
    else:
        counts["failed"] += 1
        print(f"FAIL - {name}" + (f": {detail}" if detail != "" else ""))
    sys.stdout.flush()
    return bool(cond)


def group(fn):
    """Run a test group; an unexpected exception counts as one failure."""
    try:
        fn()
    except Exception:                                           # noqa: BLE001
        check(f"{fn.__name__} raised", False, traceback.format_exc())


def summary() -> int:
    """Print the last line, `N passed, N failed`; returns the exit status."""
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


# urllib without a proxy, never following a redirect by itself.
OPENER = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))


def req(url, method="GET", headers=None, data=None, timeout=20):
    """-> (status, headers, body). 3xx, 4xx and 5xx are returned, not raised;
    a dict, list or str body is sent as JSON."""
    if isinstance(data, (dict, list, str)):
        data = json.dumps(data).encode()
    r = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with OPENER.open(r, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def jreq(url, **kw):
    """req, with the body parsed as JSON where it is JSON."""
    st, h, body = req(url, **kw)
    try:
        return st, h, json.loads(body) if body else None
    except ValueError:
        return st, h, body


class ServerProc:
    """python3 SCRIPT --port 0 --port-file ... ARGS, waited for until it
    listens; its stderr kept in TMP/NAME.stderr."""

    def __init__(self, script: str, tmp: str, name: str, *args: str) -> None:
        self.port_file = os.path.join(tmp, f"{name}.port")
        self.err_path = os.path.join(tmp, f"{name}.stderr")
        self.err = open(self.err_path, "wb")     # noqa: SIM115 -- lives as long as the server
        self.proc = subprocess.Popen([sys.executable, script, "--port", "0", "--port-file",
                                      self.port_file, *args],
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.time() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{name} did not start:\n" + self.stderr())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.base = f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        if not self.err.closed:
            self.err.flush()
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.err.close()
