#!/usr/bin/env python3
"""Local stand-in for the Hugging Face hub and dataset viewer, with fault injection.

Tests of ds-fetch must never reach the internet, so this server speaks the
subset of the real protocols that ds-fetch (libcurl) and huggingface_hub use:

  * dataset viewer (https://datasets-server.huggingface.co): /splits, /rows,
    /first-rows, /size, /is-valid -- served at the root AND under /viewer/;
  * hub API: /api/{models,datasets}/OWNER/NAME[/revision/REV],
    /api/{models,datasets}/OWNER/NAME/tree/REV[/PATH] (paginated with a Link
    header), /api/whoami-v2;
  * file download: [/datasets]/OWNER/NAME/resolve/REV/PATH (GET and HEAD);
    big ("LFS") files answer 302 to a signed CDN-like URL on another host name
    of this same server (/cdn/...), which honours Range;
  * control: /_faults (fault rules), /_debug/requests (request log).

Only the Python 3.11 standard library is used.  See README.md next to this
file for the fixture layout and every option; run with --help for a summary.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field

from mockhttp import DispatchingHandler, Faults, Kind, Life, Logger, Rule, Server

# The viewer refuses pages longer than this (libcommon MAX_NUM_ROWS_PER_PAGE).
MAX_ROWS_PER_PAGE = 100
# Names at the top of a repo folder that describe the fixture and are not
# repo files: they never show up in listings and cannot be downloaded.
RESERVED = {"_commit", "_viewer"}
REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 256 * 1024
START = time.monotonic()

log = Logger("hub")


def iso(ts: float) -> str:
    # The hub's date format; huggingface_hub parses it with parse_datetime.
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


# --------------------------------------------------------------------------
# Content hashes
# --------------------------------------------------------------------------

class HashCache:
    """(git blob sha1, sha256) of files, keyed on (path, size, mtime).

    Fixtures may hold many MiB, and every resolve/API call needs the hashes;
    keying on size+mtime lets a test rewrite a fixture file mid-run and see
    new hashes without restarting the server.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple, tuple[str, str]] = {}

    def get(self, path: str) -> tuple[str, str]:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cache.get(key)
        if hit:
            return hit
        # git's blob id is sha1("blob <size>\0" + content): that is what the
        # hub reports as the ETag of small files and as "oid" in the tree.
        g = hashlib.sha1(b"blob %d\0" % st.st_size)
        s = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                g.update(b)
                s.update(b)
        val = (g.hexdigest(), s.hexdigest())
        with self._lock:
            self._cache[key] = val
        return val


def throttled(chunks, rate: float):
    """The same bytes in 16 KiB pieces, at about `rate` bytes a second."""
    t0, sent = time.monotonic(), 0
    for chunk in chunks:
        for i in range(0, len(chunk), 16384):
            piece = chunk[i:i + 16384]
            ahead = (sent + len(piece)) / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
            sent += len(piece)
            yield piece


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FileInfo:
    path: str          # path inside the repo, '/'-separated
    abspath: str
    size: int
    oid: str           # git blob id (of the LFS pointer for LFS files)
    sha256: str
    lfs: bool
    pointer_size: int = 0

    def sibling(self, blobs: bool) -> dict:
        d: dict = {"rfilename": self.path}
        if blobs:
            d["blobId"] = self.oid
            d["size"] = self.size
            if self.lfs:
                d["lfs"] = {"sha256": self.sha256, "size": self.size,
                            "pointerSize": self.pointer_size}
        return d

    def tree_entry(self) -> dict:
        d: dict = {"type": "file", "oid": self.oid, "size": self.size, "path": self.path}
        if self.lfs:
            d["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return d


# --------------------------------------------------------------------------
# Repos (read from the fixture tree on every request, so tests may edit it)
# --------------------------------------------------------------------------

class Repo:
    def __init__(self, hub: Hub, rtype: str, owner: str, name: str) -> None:
        self.hub = hub
        self.rtype = rtype                      # "model" or "dataset"
        self.id = f"{owner}/{name}"
        self.owner = owner
        # --gated names datasets with a "datasets/" prefix, like hub URLs do.
        self.key = self.id if rtype == "model" else f"datasets/{self.id}"
        self.dir = os.path.join(hub.root, rtype + "s", owner, name)

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def file_paths(self) -> list[str]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.dir):
            rel_dir = os.path.relpath(dirpath, self.dir)
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d not in RESERVED]
                filenames = [f for f in filenames if f not in RESERVED]
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for fn in filenames:
                rel = fn if rel_dir == "." else f"{rel_dir}/{fn}".replace(os.sep, "/")
                if os.path.isfile(os.path.join(dirpath, fn)):
                    out.append(rel)
        return sorted(out)

    def file(self, rel: str) -> FileInfo | None:
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") for p in parts) or parts[0] in RESERVED:
            return None
        p = os.path.join(self.dir, *parts)
        real_root = os.path.realpath(self.dir)
        if not os.path.isfile(p) or not os.path.realpath(p).startswith(real_root + os.sep):
            return None
        size = os.path.getsize(p)
        oid, sha = self.hub.hashes.get(p)
        lfs = size > self.hub.cfg.lfs_threshold
        info = FileInfo(rel, p, size, oid, sha, lfs)
        if lfs:
            # What git stores for an LFS file is this pointer; the hub reports
            # the pointer's blob id as "oid"/"blobId" and the sha256 under "lfs".
            pointer = (f"version https://git-lfs.github.com/spec/v1\n"
                       f"oid sha256:{sha}\nsize {size}\n").encode()
            info.oid = git_blob_sha1(pointer)
            info.pointer_size = len(pointer)
            self.hub.remember_blob(sha, p)
        return info

    def files(self) -> list[FileInfo]:
        return [f for f in (self.file(p) for p in self.file_paths()) if f]

    def commit(self) -> str:
        p = os.path.join(self.dir, "_commit")
        if os.path.isfile(p):
            with open(p, encoding="utf-8") as f:
                sha = f.read().strip().lower()
            if HEX40.match(sha):
                return sha
            log(f"warning: {p} is not a 40-hex sha, deriving one from the content")
        # Stable for identical content, changes when any file changes.
        h = hashlib.sha1()
        for fi in self.files():
            h.update(f"{fi.path}\0{fi.oid}\n".encode())
        return h.hexdigest()

    def last_modified(self) -> float:
        ts = [os.path.getmtime(os.path.join(self.dir, *p.split("/"))) for p in self.file_paths()]
        return max(ts) if ts else os.path.getmtime(self.dir)


# --------------------------------------------------------------------------
# Fault rules
# --------------------------------------------------------------------------

# kind -> its arguments (mockhttp.Kind: how many at most, int or float, how
# many at least)
KINDS = {"429": Kind(1), "500": Kind(0), "503": Kind(0), "cut": Kind(1, int), "slow": Kind(1),
         "corrupt": Kind(0), "truncate-cell": Kind(1, int), "too-big": Kind(2, int, 1),
         "latency": Kind(1), "throttle": Kind(1)}
PRE_KINDS = {"latency", "slow", "429", "500", "503"}   # act before routing
BODY_KINDS = {"cut", "corrupt", "throttle"}            # act while writing a body
ROWS_KINDS = {"truncate-cell", "too-big"}              # act inside /rows


def parse_rule(text: str) -> Rule:
    return Faults(KINDS).parse_rule(text)


# --------------------------------------------------------------------------
# Server state
# --------------------------------------------------------------------------

@dataclass
class Config:
    root: str
    lfs_threshold: int = 1 << 20
    tree_page_size: int = 1000
    token: str | None = None
    gated: set[str] = field(default_factory=set)
    cdn_host: str = "auto"
    cdn_ttl: int = 3600
    cdn_reject_auth: bool = False
    first_rows_cell_bytes: int = 100
    quiet: bool = False


class Hub:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.root = os.path.abspath(cfg.root)
        self.hashes = HashCache()
        self.faults = Faults(KINDS)
        self.secret = secrets.token_bytes(32)       # signs CDN URLs
        self._blobs: dict[str, str] = {}           # sha256 -> file, for /cdn
        self._blob_lock = threading.Lock()
        self._rows_cache: dict[tuple, list[dict]] = {}
        self._rows_lock = threading.Lock()
        self.req_lock = threading.Lock()
        self.requests: list[dict] = []
        self.seq = 0
        self.cdn_auth_leaks = 0

    def remember_blob(self, sha: str, path: str) -> None:
        with self._blob_lock:
            self._blobs[sha] = path

    def find_blob(self, sha: str) -> str | None:
        with self._blob_lock:
            p = self._blobs.get(sha)
        if p and os.path.isfile(p) and self.hashes.get(p)[1] == sha:
            return p
        # Not issued by this process (or the file changed): scan the fixtures.
        for rtype in ("model", "dataset"):
            base = os.path.join(self.root, rtype + "s")
            if not os.path.isdir(base):
                continue
            for owner in sorted(os.listdir(base)):
                if not os.path.isdir(os.path.join(base, owner)):
                    continue
                for name in sorted(os.listdir(os.path.join(base, owner))):
                    repo = Repo(self, rtype, owner, name)
                    for fi in repo.files():
                        if fi.lfs and fi.sha256 == sha:
                            return fi.abspath
        return None

    def sign(self, sha: str, expires: int) -> str:
        return hmac.new(self.secret, f"{sha}:{expires}".encode(), "sha256").hexdigest()[:32]

    def load_rows(self, path: str) -> list[dict]:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        with self._rows_lock:
            if key in self._rows_cache:
                return self._rows_cache[key]
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError(f"{path}:{n}: a row must be a JSON object")
                    rows.append(obj)
        with self._rows_lock:
            self._rows_cache[key] = rows
        return rows

    def record(self, entry: dict) -> None:
        with self.req_lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.requests.append(entry)
            del self.requests[:-20000]          # bound memory on long benchmarks
            if entry["path"].startswith("/cdn/") and entry["auth"] != "none":
                self.cdn_auth_leaks += 1


# --------------------------------------------------------------------------
# Viewer helpers
# --------------------------------------------------------------------------

def infer_type(v) -> dict:
    """A `datasets`-style feature type for a JSON value (best effort)."""
    if isinstance(v, bool):
        return {"dtype": "bool", "_type": "Value"}
    if isinstance(v, int):
        return {"dtype": "int64", "_type": "Value"}
    if isinstance(v, float):
        return {"dtype": "float64", "_type": "Value"}
    if isinstance(v, str):
        return {"dtype": "string", "_type": "Value"}
    if isinstance(v, list):
        return {"feature": infer_type(v[0]) if v else {"dtype": "null", "_type": "Value"},
                "_type": "List"}
    if isinstance(v, dict):
        return {k: infer_type(x) for k, x in v.items()}
    return {"dtype": "null", "_type": "Value"}


def features_of(rows: list[dict]) -> list[dict]:
    names: list[str] = []
    types: dict[str, dict] = {}
    for r in rows:
        for k, v in r.items():
            if k not in types:
                names.append(k)
                types[k] = infer_type(v)
            elif v is not None and types[k].get("dtype") == "null":
                types[k] = infer_type(v)
    return [{"feature_idx": i, "name": n, "type": types[n]} for i, n in enumerate(names)]


def truncate_cell(value, limit: int):
    """Mimic the viewer's cell truncation: the cell becomes a string holding
    at most `limit` UTF-8 bytes of its (JSON) text.  Returns (value, cut?)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return value, False
    return raw[:limit].decode("utf-8", "ignore"), True


def split_order(name: str):
    return ({"train": 0, "validation": 1, "test": 2}.get(name, 3), name)


def parse_range(header: str | None, size: int):
    """Returns None (serve everything), "unsatisfiable", or (first, last)."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None        # multi-range or garbage: RFC 9110 lets us ignore it
    if m.group(1) != "":
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) != "" else size - 1
        if first >= size:
            return "unsatisfiable"
        if last < first:
            return None
        return first, min(last, size - 1)
    n = int(m.group(2))
    if n == 0 or size == 0:
        return "unsatisfiable"
    return max(0, size - n), size - 1


def file_chunks(path: str, start: int, length: int):
    with open(path, "rb") as f:
        f.seek(start)
        while length > 0:
            b = f.read(min(CHUNK, length))
            if not b:
                break
            length -= len(b)
            yield b


VIEWER_NOT_FOUND = ("The dataset does not exist, or is not accessible without authentication "
                    "(private or gated). Please check the spelling of the dataset name or "
                    "retry with authentication.")
VIEWER_FORBIDDEN = ("The dataset does not exist, or is not accessible with the current "
                    "credentials (private or gated). Please check the spelling of the dataset "
                    "name or retry with other authentication credentials.")
VIEWER_ENDPOINTS = {"splits", "rows", "first-rows", "size", "is-valid"}


class Reply(Exception):
    """Raised by a route to answer with a JSON error."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict | None = None, hub_style: bool = True) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = headers or {}
        self.hub_style = hub_style


# --------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------

class Handler(DispatchingHandler):
    # HTTP/1.1 so clients (libcurl) reuse connections as they would with the
    # real hub; every response therefore carries a Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "ds-hub-mock/1.0"
    hub: Hub  # set on the subclass made by make_server()

    # ---- plumbing -------------------------------------------------------

    def _dispatch(self) -> None:
        t0, control = self._begin()
        self.body_rules = [] if control else self.hub.faults.matching(self.path, BODY_KINDS)
        try:
            if control:
                self._control()
            elif not self._pre_faults():
                self._route()
        except Reply as r:
            self._error(r)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:                                  # noqa: BLE001
            log("internal error: " + "".join(traceback.format_exception(e)).rstrip())
            if not self.headers_done:
                self._json(500, {"error": f"mock hub internal error: {e}"})
            self.close_connection = True
        finally:
            ms = (time.monotonic() - t0) * 1000
            auth = self._auth_state()
            if not self.hub.cfg.quiet:
                # Only the auth *state* is ever logged, never the header value.
                log(f'{self.client_address[0]} "{self.command} {self.path}" {self.status} '
                    f'{self.sent}B {ms:.1f}ms auth={auth} faults={",".join(self.fault_names) or "-"}')
            if not control:
                self.hub.record({
                    "t": round(time.monotonic() - START, 4), "method": self.command,
                    "path": self.path, "host": self.headers.get("Host"),
                    "status": self.status, "auth": auth,
                    "range": self.headers.get("Range"), "faults": self.fault_names,
                    "bytes": self.sent, "ms": round(ms, 2)})

    def _auth_state(self) -> str:
        h = self.headers.get("Authorization")
        if not h:
            return "none"
        tok = self.hub.cfg.token
        if tok is None:
            return "present"
        return "token" if hmac.compare_digest(h.encode(), f"Bearer {tok}".encode()) else "wrong"

    def _start(self, status: int, headers: dict, length: int) -> None:
        self.status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.headers_done = True

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        h = {"Content-Type": ctype}
        h.update(headers or {})
        self._start(status, h, len(body))
        self._write_body([body], len(body))

    def _json(self, status: int, obj, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                   "application/json; charset=utf-8", headers)

    def _error(self, r: Reply) -> None:
        h = dict(r.headers)
        if r.code:
            h["X-Error-Code"] = r.code
        if r.hub_style:
            # huggingface_hub reads X-Error-Message; header values must be latin-1.
            h["X-Error-Message"] = r.message.encode("latin-1", "replace").decode("latin-1")
        self._json(r.status, {"error": r.message}, h)

    def _write_body(self, chunks, total: int) -> None:
        """Write a body, applying `cut` and `corrupt` rules that match."""
        if self.command == "HEAD" or total == 0:
            return
        limit = flip_at = rate = None
        for rule in self.body_rules:
            if rule.kind == "throttle" and rate is None and self.hub.faults.claim(rule):
                rate = max(rule.num(0, 1 << 20), 1.0)
                self.fault_names.append(f"throttle:{rate:g}")
            if rule.kind == "cut" and limit is None and self.hub.faults.claim(rule):
                limit = int(rule.num(0, total // 2))
                self.fault_names.append(f"cut:{limit}")
            elif rule.kind == "corrupt" and flip_at is None and self.hub.faults.claim(rule):
                flip_at = total // 2
                self.fault_names.append("corrupt")
        if rate is not None:
            chunks = throttled(chunks, rate)
        pos = 0
        for chunk in chunks:
            if flip_at is not None and pos <= flip_at < pos + len(chunk):
                b = bytearray(chunk)
                b[flip_at - pos] ^= 0xFF        # same length, different sha256
                chunk = bytes(b)
            if limit is not None and pos + len(chunk) >= limit:
                self.wfile.write(chunk[:limit - pos])
                self.sent += limit - pos
                # The headers promised `total` bytes; hanging up now is what a
                # dropped CDN connection looks like to the client.
                self.close_connection = True
                return
            self.wfile.write(chunk)
            self.sent += len(chunk)
            pos += len(chunk)

    def _pre_faults(self) -> bool:
        """Delays and canned error statuses; True if a response was sent."""
        for rule in self.hub.faults.matching(self.path, PRE_KINDS):
            if not self.hub.faults.claim(rule):
                continue
            k = rule.kind
            if k == "latency":
                self.fault_names.append(f"latency:{rule.num(0, 100):g}")
                time.sleep(rule.num(0, 100) / 1000.0)
            elif k == "slow":
                self.fault_names.append(f"slow:{rule.num(0, 1):g}")
                time.sleep(rule.num(0, 1))
            elif k == "429":
                secs = int(rule.num(0, 1))
                self.fault_names.append(f"429:{secs}")
                # Retry-After is the standard; RateLimit* is what the hub sends
                # nowadays (IETF draft), and huggingface_hub prefers it.
                self._json(429, {"error": "You have been rate-limited; you can retry this action "
                                          f"in about {secs} seconds."},
                           {"Retry-After": secs, "RateLimit": f'"api";r=0;t={secs}',
                            "RateLimit-Policy": '"fixed window";"api";q=500;w=300'})
                return True
            elif k == "500":
                self.fault_names.append("500")
                self._json(500, {"error": "Internal Error - We're working hard to fix this as "
                                          "soon as possible!"})
                return True
            elif k == "503":
                self.fault_names.append("503")
                self._json(503, {"error": "Service Unavailable"})
                return True
        return False

    # ---- routing --------------------------------------------------------

    def _segments(self) -> list[str]:
        return [urllib.parse.unquote(s) for s in self.rawpath.split("/")[1:]]

    def _route(self) -> None:
        seg = self._segments()
        if seg and seg[0] == "viewer":                 # optional viewer prefix
            seg = seg[1:]
        if len(seg) == 1 and seg[0] in VIEWER_ENDPOINTS:
            return self._viewer(seg[0])
        if seg[:2] == ["api", "whoami-v2"]:
            return self._whoami()
        if len(seg) >= 6 and seg[:3] == ["api", "v1", "models"] and seg[5] in ("repo",):
            return self._modelscope(seg[3], seg[4], seg[6:])
        if len(seg) >= 4 and seg[0] == "api" and seg[1] in ("models", "datasets"):
            return self._api(seg[1][:-1], seg[2], seg[3], self.rawpath.split("/")[5:])
        if len(seg) >= 2 and seg[0] == "cdn":
            return self._cdn(seg[-1])
        if len(seg) >= 6 and seg[0] == "datasets" and seg[3] == "resolve":
            return self._resolve("dataset", seg[1], seg[2], seg[4], "/".join(seg[5:]))
        if len(seg) >= 5 and seg[2] == "resolve":
            return self._resolve("model", seg[0], seg[1], seg[3], "/".join(seg[4:]))
        raise Reply(404, "Not Found")

    def _repo(self, rtype: str, owner: str, name: str) -> Repo:
        """Look a repo up and enforce gating, the way the hub orders it."""
        if not (REPO_PART.match(owner) and REPO_PART.match(name)):
            raise Reply(400, f"Invalid repo id: {owner}/{name}", "InvalidRepoId")
        repo = Repo(self.hub, rtype, owner, name)
        if not repo.exists():
            raise Reply(404, "Repository not found", "RepoNotFound")
        if repo.key in self.hub.cfg.gated:
            state = self._auth_state()
            if state == "none":
                raise Reply(401, f"Access to {rtype} {repo.id} is restricted. You must have access "
                                 "to it and be authenticated to access it. Please log in.", "GatedRepo")
            if state != "token":
                raise Reply(403, f"Access to {rtype} {repo.id} is restricted and you are not in the "
                                 "authorized list. Visit the repo page to ask for access.", "GatedRepo")
        return repo

    def _check_rev(self, repo: Repo, rev: str) -> str:
        commit = repo.commit()
        if rev not in ("main", commit):
            raise Reply(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _whoami(self) -> None:
        if self._auth_state() != "token":
            raise Reply(401, "Invalid credentials in Authorization header")
        self._json(200, {"type": "user", "name": "ds-test", "fullname": "ds test user",
                         "auth": {"type": "access_token",
                                  "accessToken": {"displayName": "ds-test", "role": "read"}}})

    # ---- hub API --------------------------------------------------------

    def _api(self, rtype: str, owner: str, name: str, rest_raw: list[str]) -> None:
        repo = self._repo(rtype, owner, name)
        rest = [urllib.parse.unquote(s) for s in rest_raw]
        if rest and rest[0] == "tree":
            if len(rest) < 2:
                raise Reply(400, "Missing revision")
            return self._tree(repo, rest[1], "/".join(p for p in rest[2:] if p))
        if not rest or rest == [""]:
            rev = "main"
        elif rest[0] == "revision" and len(rest) >= 2:
            rev = "/".join(rest[1:])     # refs/pr/1 may arrive unencoded
        else:
            raise Reply(404, "Not Found")
        commit = self._check_rev(repo, rev)
        blobs = self.query.get("blobs", [""])[0].lower() in ("1", "true")
        files = repo.files()
        info = {
            "_id": hashlib.sha1(repo.key.encode()).hexdigest()[:24],
            "id": repo.id, "author": repo.owner, "sha": commit,
            "lastModified": iso(repo.last_modified()), "createdAt": iso(os.path.getctime(repo.dir)),
            "private": False,
            "gated": "manual" if repo.key in self.hub.cfg.gated else False,
            "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "siblings": [f.sibling(blobs) for f in files],
        }
        if rtype == "model":
            info["modelId"] = repo.id
        if blobs:
            info["usedStorage"] = sum(f.size for f in files)
        self._json(200, info)

    def _tree(self, repo: Repo, rev: str, under: str) -> None:
        self._check_rev(repo, rev)
        recursive = self.query.get("recursive", [""])[0].lower() in ("1", "true")
        files = repo.files()
        dirs = sorted({"/".join(f.path.split("/")[:i])
                       for f in files for i in range(1, f.path.count("/") + 1)})
        if under and under not in dirs:
            raise Reply(404, f"Entry not found: {under}", "EntryNotFound")
        prefix = under + "/" if under else ""

        def wanted(p: str) -> bool:
            return p.startswith(prefix) and (recursive or "/" not in p[len(prefix):])

        entries = []
        for d in dirs:
            if wanted(d):
                oid = hashlib.sha1(("tree:" + "".join(
                    f.oid for f in files if f.path.startswith(d + "/"))).encode()).hexdigest()
                entries.append({"type": "directory", "oid": oid, "size": 0, "path": d})
        entries += [f.tree_entry() for f in files if wanted(f.path)]
        entries.sort(key=lambda e: e["path"])
        # Opaque cursor, like the hub's: clients must follow the Link header.
        start = 0
        if "cursor" in self.query:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(self.query["cursor"][0]))["o"])
            except Exception:                                   # noqa: BLE001
                raise Reply(400, "Invalid cursor") from None
        n = max(1, self.hub.cfg.tree_page_size)
        page = entries[start:start + n]
        headers = {}
        if start + n < len(entries):
            cur = base64.urlsafe_b64encode(json.dumps({"o": start + n}).encode()).decode()
            q = [(k, v) for k, vs in self.query.items() if k != "cursor" for v in vs]
            q.append(("cursor", cur))
            host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
            url = f"http://{host}{self.rawpath}?{urllib.parse.urlencode(q)}"
            headers["Link"] = f'<{url}>; rel="next"'
        self._json(200, page, headers)

    # ---- downloads ------------------------------------------------------

    # ---- ModelScope (https://www.modelscope.cn) --------------------------
    # The two calls a downloader makes: the file list
    #   GET /api/v1/models/OWNER/NAME/repo/files?Revision=R&Recursive=true
    #   -> {"Code": 200, "Data": {"Files": [{"Name", "Path", "Type", "Size",
    #       "Sha256", "IsLFS", "Revision"}]}, "Message": "success", "Success": true}
    # and a file, GET /api/v1/models/OWNER/NAME/repo?Revision=R&FilePath=P,
    # served directly (small files) or by a redirect to the CDN (LFS files).
    # Revision "master" is ModelScope's default branch and maps to main.

    def _modelscope(self, owner: str, name: str, rest: list[str]) -> None:
        def ms_error(status: int, msg: str) -> None:
            raise Reply(status, msg, "ModelScopeError")
        rev = self.query.get("Revision", ["master"])[0] or "master"
        try:
            repo = self._repo("model", owner, name)
            commit = self._check_rev(repo, "main" if rev == "master" else rev)
        except Reply as r:
            return self._json(r.status, {"Code": 10010205001 if r.status == 404 else r.status,
                                         "Message": r.message,
                                         "Success": False})
        if rest == ["files"]:
            files = [{"Name": f.path.rsplit("/", 1)[-1], "Path": f.path, "Type": "blob",
                      "Size": f.size, "Sha256": f.sha256, "IsLFS": f.lfs, "Revision": commit}
                     for f in repo.files()]
            return self._json(200, {"Code": 200, "Data": {"Files": files}, "Message": "success",
                                    "Success": True})
        if rest:
            ms_error(404, "Not Found")
        fi = repo.file(self.query.get("FilePath", [""])[0])
        if fi is None:
            return self._json(404, {"Code": 10010205001, "Message": "file not found", "Success": False})
        if fi.lfs:
            cdn = self._cdn_url(fi)
            return self._send(302, b"", "text/plain", {"Location": cdn})
        self._serve_file(fi.abspath, fi.size, {"ETag": f'"{fi.oid}"', "Accept-Ranges": "bytes"},
                         _content_type(fi.path))

    def _resolve(self, rtype: str, owner: str, name: str, rev: str, path: str) -> None:
        if self.command not in ("GET", "HEAD"):
            raise Reply(405, "Method Not Allowed")
        repo = self._repo(rtype, owner, name)
        commit = self._check_rev(repo, rev)
        fi = repo.file(path)
        if fi is None:
            # X-Repo-Commit on the 404 lets huggingface_hub cache the absence.
            raise Reply(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit})
        common = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if fi.lfs:
            cdn = self._cdn_url(fi)
            body = f"Found. Redirecting to {cdn}".encode()
            # X-Linked-* describe the target blob; the ETag of the 302 itself is
            # not the file's (an Express-style weak tag of the redirect body), so
            # a client that uses it instead of X-Linked-Etag gets caught.
            h = dict(common, **{
                "Location": cdn, "X-Linked-Etag": f'"{fi.sha256}"',
                "X-Linked-Size": fi.size,
                "ETag": f'W/"{len(body):x}-{hashlib.sha1(body).hexdigest()[:27]}"'})
            return self._send(302, body, "text/plain; charset=utf-8", h)
        self._serve_file(fi.abspath, fi.size, dict(common, ETag=f'"{fi.oid}"'),
                         _content_type(fi.path))

    def _cdn_url(self, fi: FileInfo) -> str:
        host_hdr = self.headers.get("Host") or "127.0.0.1"
        req_host = urllib.parse.urlsplit("//" + host_hdr).hostname or "127.0.0.1"
        host = self.hub.cfg.cdn_host
        if host == "auto":
            # Another *name* for this same server: clients (libcurl, and
            # huggingface_hub's _is_same_or_hub_host) only drop Authorization
            # when the redirect leaves the host, so it must differ.
            host = "localhost" if req_host == "127.0.0.1" else "127.0.0.1"
        expires = int(time.time()) + self.hub.cfg.cdn_ttl
        fname = fi.path.rsplit("/", 1)[-1]
        disp = f"attachment; filename*=UTF-8''{urllib.parse.quote(fname)}; filename=\"{fname}\";"
        q = urllib.parse.urlencode({"response-content-disposition": disp,
                                    "Expires": expires,
                                    "Signature": self.hub.sign(fi.sha256, expires)})
        port = self.server.server_address[1]
        return f"http://{host}:{port}/cdn/repos/{fi.sha256[:2]}/{fi.sha256[2:4]}/{fi.sha256}?{q}"

    def _cdn(self, sha: str) -> None:
        if self.command not in ("GET", "HEAD"):
            raise Reply(405, "Method Not Allowed")
        xml = "application/xml"

        def s3_error(status: int, code: str, msg: str) -> None:
            self._send(status, (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}'
                                f'</Code><Message>{msg}</Message></Error>').encode(), xml)

        if self.hub.cfg.cdn_reject_auth and self.headers.get("Authorization"):
            # What S3 says to a pre-signed URL that also carries a token.
            return s3_error(400, "InvalidArgument", "Only one auth mechanism allowed; only the "
                            "X-Amz-Algorithm query parameter, Signature query string parameter "
                            "or the Authorization header should be specified")
        try:
            expires = int(self.query.get("Expires", ["0"])[0])
        except ValueError:
            expires = 0
        sig = self.query.get("Signature", [""])[0]
        if not HEX64.match(sha) or not hmac.compare_digest(sig, self.hub.sign(sha, expires)):
            return s3_error(403, "AccessDenied", "Invalid signature")
        if expires < time.time():
            return s3_error(403, "AccessDenied", "Request has expired")
        path = self.hub.find_blob(sha)
        if path is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        h = {"ETag": f'"{sha}"', "Accept-Ranges": "bytes"}
        disp = self.query.get("response-content-disposition", [""])[0]
        if disp:
            h["Content-Disposition"] = disp
        self._serve_file(path, os.path.getsize(path), h, "application/octet-stream")

    def _serve_file(self, path: str, size: int, headers: dict, ctype: str) -> None:
        rng = parse_range(self.headers.get("Range"), size)
        h = dict(headers, **{"Content-Type": ctype})
        if rng == "unsatisfiable":
            h["Content-Range"] = f"bytes */{size}"
            return self._send(416, b"", ctype, h)
        if rng is None:
            self._start(200, h, size)
            return self._write_body(file_chunks(path, 0, size), size)
        first, last = rng
        h["Content-Range"] = f"bytes {first}-{last}/{size}"
        n = last - first + 1
        self._start(206, h, n)
        self._write_body(file_chunks(path, first, n), n)

    # ---- dataset viewer -------------------------------------------------

    def _viewer(self, endpoint: str) -> None:
        def param(name: str, required: bool = True) -> str | None:
            v = self.query.get(name, [""])[0]
            if not v.strip():
                if required:
                    raise Reply(422, f"Parameter '{name}' is required",
                                "MissingRequiredParameter", hub_style=False)
                return None
            return v

        dataset = param("dataset")
        parts = dataset.split("/")
        repo = None
        if len(parts) == 2 and all(REPO_PART.match(p) for p in parts):
            repo = Repo(self.hub, "dataset", parts[0], parts[1])
        vdir = os.path.join(repo.dir, "_viewer") if repo else ""
        if not repo or not os.path.isdir(vdir):
            raise Reply(404, VIEWER_NOT_FOUND, "ResponseNotFound", hub_style=False)
        if repo.key in self.hub.cfg.gated:
            # The viewer checks access with the hub: no token -> 401, a token
            # without access -> 404 (it will not confirm the dataset exists).
            state = self._auth_state()
            if state == "none":
                raise Reply(401, VIEWER_NOT_FOUND, "ExternalUnauthenticatedError", hub_style=False)
            if state != "token":
                raise Reply(404, VIEWER_FORBIDDEN, "ExternalAuthenticatedError", hub_style=False)

        configs = sorted(c for c in os.listdir(vdir) if os.path.isdir(os.path.join(vdir, c)))

        def splits_of(cfg: str) -> list[str]:
            d = os.path.join(vdir, cfg)
            return sorted((f[:-6] for f in os.listdir(d) if f.endswith(".jsonl")), key=split_order)

        if endpoint == "is-valid":
            return self._json(200, {"preview": True, "viewer": True, "search": False,
                                    "filter": False, "statistics": False})
        if endpoint in ("splits", "size"):
            want = param("config", required=False)
            if want is not None and want not in configs:
                raise Reply(404, "Not found.", "ResponseNotFound", hub_style=False)
            sel = [want] if want else configs
            if endpoint == "splits":
                return self._json(200, {"splits": [{"dataset": dataset, "config": c, "split": s}
                                                   for c in sel for s in splits_of(c)],
                                        "pending": [], "failed": []})
            return self._size(dataset, vdir, sel, splits_of, whole=want is None)

        config, split = param("config"), param("split")
        spath = os.path.join(vdir, config, split + ".jsonl")
        if "/" in config + split or config not in configs or not os.path.isfile(spath):
            raise Reply(404, "Not found.", "ResponseNotFound", hub_style=False)
        rows = self.hub.load_rows(spath)
        feats = features_of(rows)
        names = [f["name"] for f in feats]

        def item(i: int, limit: int | None) -> dict:
            row, cut = {}, []
            for n in names:
                v = rows[i].get(n)
                if limit is not None:
                    v, was_cut = truncate_cell(v, limit)
                    if was_cut:
                        cut.append(n)
                row[n] = v
            return {"row_idx": i, "row": row, "truncated_cells": cut}

        if endpoint == "first-rows":
            out = [item(i, self.hub.cfg.first_rows_cell_bytes)
                   for i in range(min(len(rows), MAX_ROWS_PER_PAGE))]
            return self._json(200, {"dataset": dataset, "config": config, "split": split,
                                    "features": feats, "rows": out,
                                    "truncated": len(rows) > len(out)})

        # /rows: validated like libapi (422 InvalidParameter).
        try:
            offset = int(self.query.get("offset", ["0"])[0])
            length = int(self.query.get("length", [str(MAX_ROWS_PER_PAGE)])[0])
        except ValueError:
            raise Reply(422, "Parameter 'offset' and 'length' must be integer",
                        "InvalidParameter", hub_style=False) from None
        if offset < 0:
            raise Reply(422, "Parameter 'offset' must be positive", "InvalidParameter",
                        hub_style=False)
        if length < 0:
            raise Reply(422, "Parameter 'length' must be positive", "InvalidParameter",
                        hub_style=False)
        if length > MAX_ROWS_PER_PAGE:
            raise Reply(422, f"Parameter 'length' must not be greater than {MAX_ROWS_PER_PAGE}",
                        "InvalidParameter", hub_style=False)
        end = min(offset + length, len(rows))
        limit = None
        for rule in self.hub.faults.matching(self.path, ROWS_KINDS):
            if rule.kind == "too-big":
                bad, max_len = int(rule.args[0]), int(rule.num(1, 0))
                if offset <= bad < end and end - offset > max_len and self.hub.faults.claim(rule):
                    self.fault_names.append(f"too-big:{bad}")
                    size = 300000 + 1000 * (end - offset)
                    raise Reply(500, f"The size of the content of the first rows ({size} B) exceeds "
                                     "the maximum supported size (200000 B) even after truncation. "
                                     "Please report the issue.", "TooBigContentError",
                                hub_style=False)
            elif rule.kind == "truncate-cell" and limit is None and self.hub.faults.claim(rule):
                limit = int(rule.num(0, 100))
                self.fault_names.append(f"truncate-cell:{limit}")
        self._json(200, {"features": feats, "rows": [item(i, limit) for i in range(offset, end)],
                         "num_rows_total": len(rows), "num_rows_per_page": MAX_ROWS_PER_PAGE,
                         "partial": False})

    def _size(self, dataset, vdir, configs, splits_of, whole: bool) -> None:
        splits, cfgs = [], []
        for c in configs:
            tot_rows = tot_bytes = 0
            for s in splits_of(c):
                p = os.path.join(vdir, c, s + ".jsonl")
                rows = self.hub.load_rows(p)
                nb = os.path.getsize(p)
                splits.append({"dataset": dataset, "config": c, "split": s,
                               "num_bytes_parquet_files": nb, "num_bytes_memory": nb,
                               "num_rows": len(rows), "num_columns": len(features_of(rows))})
                tot_rows += len(rows)
                tot_bytes += nb
            cfgs.append({"dataset": dataset, "config": c, "num_bytes_original_files": tot_bytes,
                         "num_bytes_parquet_files": tot_bytes, "num_bytes_memory": tot_bytes,
                         "num_rows": tot_rows})
        size: dict = {"splits": splits}
        if whole:
            size["configs"] = cfgs
            size["dataset"] = {"dataset": dataset,
                               "num_bytes_original_files": sum(c["num_bytes_original_files"] for c in cfgs),
                               "num_bytes_parquet_files": sum(c["num_bytes_parquet_files"] for c in cfgs),
                               "num_bytes_memory": sum(c["num_bytes_memory"] for c in cfgs),
                               "num_rows": sum(c["num_rows"] for c in cfgs)}
        else:
            size["config"] = cfgs[0]
        self._json(200, {"size": size, "pending": [], "failed": [], "partial": False})

    # ---- control --------------------------------------------------------

    def _control(self) -> None:
        p, m = self.rawpath.rstrip("/"), self.command
        faults = self.hub.faults
        if p == "/_faults":
            out = faults.control(m, self.req_body)
            if isinstance(out, str):
                raise Reply(400, out, hub_style=False)
            if out is not None:
                return self._json(200, out)
        elif p == "/_debug/requests":
            with self.hub.req_lock:
                if m == "DELETE":
                    n = len(self.hub.requests)
                    self.hub.requests.clear()
                    self.hub.cdn_auth_leaks = 0
                    out = {"cleared": n}
                else:
                    since = int(self.query.get("since", ["0"])[0] or 0)
                    out = {"requests": [r for r in self.hub.requests if r["seq"] > since],
                           "cdn_auth_leaks": self.hub.cdn_auth_leaks}
            return self._json(200, out)
        elif p == "/_debug/health" and m in ("GET", "HEAD"):
            return self._json(200, {"ok": True, "port": self.server.server_address[1],
                                    "root": self.hub.root})
        raise Reply(404, "Not Found", hub_style=False)


def _content_type(path: str) -> str:
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return {"json": "application/json; charset=utf-8", "jsonl": "text/plain; charset=utf-8",
            "txt": "text/plain; charset=utf-8", "md": "text/markdown; charset=utf-8",
            }.get(ext, "application/octet-stream")


def make_server(cfg: Config, port: int = 0) -> tuple[Server, Hub]:
    hub = Hub(cfg)
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    return Server(("127.0.0.1", port), handler), hub


def main(argv: list[str] | None = None) -> int:
    life = Life()
    ap = argparse.ArgumentParser(description="Mock Hugging Face hub + dataset viewer for tests "
                                             "(see tests/servers/README.md).")
    ap.add_argument("--root", required=True, help="fixture directory (models/, datasets/)")
    Life.add_args(ap)
    ap.add_argument("--lfs-threshold", type=int, default=1 << 20,
                    help="files bigger than this many bytes are LFS (302 to /cdn); default 1 MiB")
    ap.add_argument("--tree-page-size", type=int, default=1000, help="entries per /tree page")
    ap.add_argument("--token", help="the one valid access token (Bearer)")
    ap.add_argument("--gated", action="append", default=[],
                    help="OWNER/NAME (model) or datasets/OWNER/NAME that requires --token; repeatable")
    ap.add_argument("--cdn-host", default="auto",
                    help="host name put in CDN redirects; auto = the other of 127.0.0.1/localhost")
    ap.add_argument("--cdn-ttl", type=int, default=3600, help="seconds a CDN link stays valid")
    ap.add_argument("--cdn-reject-auth", action="store_true",
                    help="CDN answers 400 (like S3) to requests carrying Authorization")
    ap.add_argument("--first-rows-cell-bytes", type=int, default=100,
                    help="/first-rows truncates cells longer than this (UTF-8 bytes)")
    a = ap.parse_args(argv)
    if a.gated and not a.token:
        ap.error("--gated needs --token")
    if not os.path.isdir(a.root):
        ap.error(f"--root {a.root}: not a directory")
    cfg = Config(root=a.root, lfs_threshold=a.lfs_threshold, tree_page_size=a.tree_page_size,
                 token=a.token, gated=set(a.gated), cdn_host=a.cdn_host, cdn_ttl=a.cdn_ttl,
                 cdn_reject_auth=a.cdn_reject_auth, first_rows_cell_bytes=a.first_rows_cell_bytes,
                 quiet=a.quiet)
    try:
        rules = Faults(KINDS).parse_spec(a.faults)
    except (ValueError, re.error) as e:
        ap.error(f"--faults: {e}")
    server, hub = make_server(cfg, a.port)
    hub.faults.replace(rules)
    return life.serve(server, a, log, f"root={hub.root} faults={len(rules)}")


if __name__ == "__main__":
    sys.exit(main())
