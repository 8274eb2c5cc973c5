#!/usr/bin/env python3
"""Local stand-in for the Hugging Face hub and dataset viewer, with fault injection.

Tests of ds-fetch must never reach the internet, so this server speaks the
subset of the real protocols that ds-fetch (libcurl) and huggingface_hub use:

  * dataset viewer (https://datasets-server.huggingface.co): /splits, /rows,
    /first-rows, /size, /is-valid -- served at the root AND under /viewer/;
  * hub API: /api/{models,datasets}/OWNER/NAME[/revision/REV],
    /api/{models,datasets}/OWNER/NAME/tree/REV[/PATH] (paginated with a Link
    header), /api/whoami-v2;
  * file download: [/datasets]/OWNER/NAME/resolve/REV/PATH (GET and HEAD).
    Small files answer, as huggingface.co does today, 307 with a *relative*
    Location to /api/resolve-cache/{models,datasets}/OWNER/NAME/COMMIT/PATH,
    which serves them (--legacy-resolve: a direct 200 instead); big ("LFS")
    files answer 302 to a signed CDN-like URL on another host name of this
    same server (/cdn/...), which honours Range;
  * revisions: main, the commit (or a prefix of 7+ hex digits of it), and
    the branch and tag names of an optional `_refs` fixture file;
  * rate limits announced in RateLimit / RateLimit-Policy headers on every
    hub and viewer reply, enforced with --rate-limit Q/W (429 + Retry-After);
  * hostile-hub switches for security tests of clients: --extra-entry,
    --next-link, --big-size;
  * control: /_faults (fault rules), /_debug/requests (request log).

Only the Python 3.11 standard library is used.  See README.md next to this
file for the fixture layout and every option; run with --help for a summary.
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import hashlib
import hmac
import json
import math
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
RESERVED = {"_commit", "_refs", "_viewer"}
REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
SHORT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
# The quota and window RateLimit-Policy announces without --rate-limit, as
# huggingface.co does for its "api" and "resolvers" policies.
DEFAULT_QUOTA = (3000, 300)
# "Racy git": a file changed less than RACY_NS before it was hashed may be
# rewritten again without its stat changing (timestamps come from a coarse
# clock), so such a hash is not remembered. Only up to RACY_BYTES: hashing a
# bigger file takes longer than the clock's tick, so its next rewrite shows.
RACY_NS = 2_000_000_000
RACY_BYTES = 64 << 20
CHUNK = 256 * 1024
START = time.monotonic()

log = Logger("hub")


def iso(ts: float) -> str:
    # The hub's date format; huggingface_hub parses it with parse_datetime.
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


# --------------------------------------------------------------------------
# Content hashes
# --------------------------------------------------------------------------

def stat_key(path: str) -> tuple[os.stat_result, tuple]:
    """A file's stat and what identifies one version of it: a rewrite that
    keeps the size changes ctime (and mtime), a rename-over changes the inode."""
    st = os.stat(path)
    return st, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def racy(st: os.stat_result, hashed_at_ns: int) -> bool:
    return (st.st_size <= RACY_BYTES
            and hashed_at_ns - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS)


class HashCache:
    """(git blob sha1, sha256) of files, keyed on path and stat_key().

    Fixtures may hold many MiB, and every resolve/API call needs the hashes;
    keying on device, inode, size, mtime_ns and ctime_ns lets a test rewrite a
    fixture file mid-run (even to the same size within the same second) and
    see new hashes without restarting the server. A hash taken less than
    RACY_NS after the file changed is not kept (see racy()).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple, tuple[str, str]]] = {}

    def get(self, path: str) -> tuple[str, str]:
        st, key = stat_key(path)
        with self._lock:
            hit = self._cache.get(path)
        if hit and hit[0] == key:
            return hit[1]
        t = time.time_ns()
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
        if not racy(st, t):
            with self._lock:
                self._cache[path] = (key, val)
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
    abspath: str       # "" for an --extra-entry, whose bytes are in `data`
    size: int
    oid: str           # git blob id (of the LFS pointer for LFS files)
    sha256: str
    lfs: bool
    pointer_size: int = 0
    data: bytes | None = None
    listed_size: int | None = None     # --big-size: the size listings report

    def _size(self) -> int:
        return self.size if self.listed_size is None else self.listed_size

    def sibling(self, blobs: bool) -> dict:
        d: dict = {"rfilename": self.path}
        if blobs:
            d["blobId"] = self.oid
            d["size"] = self._size()
            if self.lfs:
                d["lfs"] = {"sha256": self.sha256, "size": self._size(),
                            "pointerSize": self.pointer_size}
        return d

    def tree_entry(self) -> dict:
        d: dict = {"type": "file", "oid": self.oid, "size": self._size(), "path": self.path}
        if self.lfs:
            d["lfs"] = {"oid": self.sha256, "size": self._size(), "pointerSize": self.pointer_size}
        return d


def extra_file(path: str) -> FileInfo:
    """An --extra-entry: a small file at a literal (possibly hostile) path,
    whose listed oid and size are those of the bytes its resolve URL serves."""
    data = f"extra entry {path!r}: a hostile hub lists this path\n".encode()
    return FileInfo(path, "", len(data), git_blob_sha1(data), hashlib.sha256(data).hexdigest(),
                    False, data=data)


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

    def refs(self) -> dict[str, str]:
        """The `_refs` fixture file: {"NAME": "main" | "OTHER-NAME" | "SHA"}."""
        p = os.path.join(self.dir, "_refs")
        if not os.path.isfile(p):
            return {}
        try:
            with open(p, encoding="utf-8") as f:
                refs = json.load(f)
            if not isinstance(refs, dict) or not all(isinstance(v, str) for v in refs.values()):
                raise ValueError("want a JSON object of strings")
        except ValueError as e:
            log(f"warning: {p}: {e}; ignored")
            return {}
        return refs

    def resolve_rev(self, rev: str) -> str | None:
        """The commit REV names, or None. We keep one version, so only names
        of the current commit resolve: main, the sha or a 7+ digit prefix of
        it, and `_refs` names that lead (possibly through other names) to main
        or to the sha. An old sha, after the fixture changed, is unknown."""
        commit = self.commit()
        refs = self.refs()
        for _ in range(8):
            if rev == "main" or rev == commit or (SHORT_SHA.match(rev) and commit.startswith(rev)):
                return commit
            if rev not in refs:
                return None
            rev = refs[rev]
        return None

    def extras(self) -> list[FileInfo]:
        return [extra_file(p) for p in self.hub.cfg.extra_entries]

    def lookup(self, rel: str) -> FileInfo | None:
        """A file a resolve URL may serve: an --extra-entry by its literal
        path, or a fixture file."""
        for fi in self.extras():
            if fi.path == rel:
                return fi
        return self.file(rel)

    def listing(self) -> list[FileInfo]:
        """What /tree and siblings list: the files, the --extra-entry ones,
        with the --big-size sizes."""
        out = self.files() + self.extras()
        for fi in out:
            fi.listed_size = self.hub.cfg.big_sizes.get(fi.path)
        return out

    def last_modified(self) -> float:
        ts = [os.path.getmtime(os.path.join(self.dir, *p.split("/"))) for p in self.file_paths()]
        return max(ts) if ts else os.path.getmtime(self.dir)


# --------------------------------------------------------------------------
# Fault rules
# --------------------------------------------------------------------------

# kind -> its arguments (mockhttp.Kind: how many at most, int or float, how
# many at least)
KINDS = {"429": Kind(1), "429date": Kind(1), "500": Kind(0), "503": Kind(0), "cut": Kind(1, int),
         "slow": Kind(1), "corrupt": Kind(0), "truncate-cell": Kind(1, int),
         "too-big": Kind(2, int, 1), "latency": Kind(1), "throttle": Kind(1)}
PRE_KINDS = {"latency", "slow", "429", "429date", "500", "503"}   # act before routing
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
    legacy_resolve: bool = False                  # small files: a direct 200, no 307
    rate_limit: tuple[int, int] | None = None     # (quota, window seconds), enforced
    extra_entries: list[str] = field(default_factory=list)
    next_link: str | None = None
    big_sizes: dict[str, int] = field(default_factory=dict)

    def quota(self) -> tuple[int, int]:
        return self.rate_limit or DEFAULT_QUOTA


class Hub:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.root = os.path.abspath(cfg.root)
        self.hashes = HashCache()
        self.faults = Faults(KINDS)
        self.secret = secrets.token_bytes(32)       # signs CDN URLs
        self._blobs: dict[str, str] = {}           # sha256 -> file, for /cdn
        self._blob_lock = threading.Lock()
        self._rows_cache: dict[str, tuple[tuple, list[dict]]] = {}
        self._rows_lock = threading.Lock()
        self.req_lock = threading.Lock()
        # requests being answered: the log is read once they are recorded
        # (a client has the last byte before its request is in the log)
        self.req_done = threading.Condition(self.req_lock)
        self.inflight = 0
        self.requests: list[dict] = []
        self.seq = 0
        self.cdn_auth_leaks = 0
        self._rate_lock = threading.Lock()
        self._windows: dict[str, list] = {}        # policy -> [window start, requests in it]

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

    def sign(self, signed: str) -> str:
        """The Signature of a CDN URL: over its path and its query string
        without the Signature pair, byte for byte as sent, so that a client
        that decodes and re-encodes the query is refused, as by a real CDN."""
        return hmac.new(self.secret, signed.encode(), "sha256").hexdigest()[:32]

    def rate_hit(self, policy: str) -> tuple[int, int, bool]:
        """Count one request against POLICY's fixed window, which opens at
        the first request after the last one closed: returns (remaining,
        seconds until the window resets, refused?). Without --rate-limit
        nothing is refused and `remaining` stays >= 1."""
        q, w = self.cfg.quota()
        now = time.monotonic()
        with self._rate_lock:
            win = self._windows.setdefault(policy, [now, 0])
            if now >= win[0] + w:
                win[:] = [now, 0]
            win[1] += 1
            start, n = win
        reset = max(1, math.ceil(start + w - now))
        if self.cfg.rate_limit is None:
            return max(1, q - n), reset, False
        return max(0, q - n), reset, n > q

    def rate_reset(self) -> None:
        with self._rate_lock:
            self._windows.clear()

    def load_rows(self, path: str) -> list[dict]:
        st, key = stat_key(path)
        with self._rows_lock:
            hit = self._rows_cache.get(path)
        if hit and hit[0] == key:
            return hit[1]
        t = time.time_ns()
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError(f"{path}:{n}: a row must be a JSON object")
                    rows.append(obj)
        if not racy(st, t):
            with self._rows_lock:
                self._rows_cache[path] = (key, rows)
        return rows

    def begin(self) -> None:
        with self.req_lock:
            self.inflight += 1

    def record(self, entry: dict) -> None:
        with self.req_lock:
            self.inflight -= 1
            self.req_done.notify_all()
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
        self.rl_headers: dict = {}      # RateLimit headers every reply of this request gets
        self.location = None
        if not control:
            self.hub.begin()
        try:
            if control:
                self._control()
            elif not self._rate_limited() and not self._pre_faults():
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
                    "location": self.location, "bytes": self.sent, "ms": round(ms, 2)})

    def _auth_state(self) -> str:
        h = self.headers.get("Authorization")
        if not h:
            return "none"
        tok = self.hub.cfg.token
        if tok is None:
            return "present"
        return "token" if hmac.compare_digest(h.encode(), f"Bearer {tok}".encode()) else "wrong"

    def _policy(self) -> str | None:
        """The rate-limit policy of this request: "resolvers" for file
        downloads, "api" for the rest of the hub and the viewer, None for
        the CDN (another service, which sends no RateLimit headers)."""
        seg = self._segments()
        if seg and seg[0] == "cdn":
            return None
        if (seg[:2] == ["api", "resolve-cache"] or (len(seg) >= 5 and seg[2] == "resolve")
                or (len(seg) >= 6 and seg[0] == "datasets" and seg[3] == "resolve")):
            return "resolvers"
        return "api"

    def _rate_headers(self, policy: str, remaining: int, reset: int) -> dict:
        # draft-ietf-httpapi-ratelimit-headers, as huggingface.co sends them
        # (huggingface_hub's parse_ratelimit_headers reads exactly this form).
        q, w = self.hub.cfg.quota()
        return {"RateLimit": f'"{policy}";r={remaining};t={reset}',
                "RateLimit-Policy": f'"fixed window";"{policy}";q={q};w={w}'}

    def _rate_limited(self) -> bool:
        """Count the request; True if --rate-limit refused it (429 sent)."""
        policy = self._policy()
        if policy is None:
            return False
        remaining, reset, refused = self.hub.rate_hit(policy)
        self.rl_headers = self._rate_headers(policy, remaining, reset)
        if not refused:
            return False
        self.fault_names.append(f"rate-limit:{policy}")
        self._json(429, {"error": "You have been rate-limited; you can retry this action in "
                                  f"about {reset} seconds."}, {"Retry-After": reset})
        return True

    def _start(self, status: int, headers: dict, length: int | None) -> None:
        self.status = status
        self.send_response(status)
        # A header given as None is left out, even one of rl_headers.
        for k, v in dict(self.rl_headers, **headers).items():
            if v is None:
                continue
            if k == "Location":
                self.location = v
            self.send_header(k, str(v))
        if length is not None:          # None: a 304, which has no body
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
                # nowadays (IETF draft), and huggingface_hub prefers it. The
                # CDN (policy None) sends Retry-After alone.
                policy = self._policy()
                h = {"Retry-After": secs}
                if policy:
                    h.update(self._rate_headers(policy, 0, secs))
                self._json(429, {"error": "You have been rate-limited; you can retry this action "
                                          f"in about {secs} seconds."}, h)
                return True
            elif k == "429date":
                # Retry-After as an HTTP-date (RFC 9110 10.2.3), the only hint:
                # no RateLimit headers, so a client must read the date.
                secs = int(rule.num(0, 1))
                self.fault_names.append(f"429date:{secs}")
                when = email.utils.formatdate(math.ceil(time.time()) + secs, usegmt=True)
                self._json(429, {"error": "You have been rate-limited; retry after " + when},
                           {"Retry-After": when, "RateLimit": None, "RateLimit-Policy": None})
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
        if len(seg) >= 7 and seg[:2] == ["api", "resolve-cache"] and seg[2] in ("models", "datasets"):
            return self._resolve_cache(seg[2][:-1], seg[3], seg[4], seg[5], "/".join(seg[6:]))
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
        commit = repo.resolve_rev(rev)
        if commit is None:
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
        files = repo.listing()
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
        # json.dumps writes Python ints exactly: a --big-size past 2**53 keeps
        # every digit in the JSON text.
        self._json(200, info)

    def _tree(self, repo: Repo, rev: str, under: str) -> None:
        self._check_rev(repo, rev)
        recursive = self.query.get("recursive", [""])[0].lower() in ("1", "true")
        files = repo.listing()
        # Folders come from the fixture files only; an --extra-entry is listed
        # as it is, at the top, whatever its path says.
        dirs = sorted({"/".join(f.path.split("/")[:i])
                       for f in files if not f.data for i in range(1, f.path.count("/") + 1)})
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
        entries += [f.tree_entry() for f in files if (not under if f.data else wanted(f.path))]
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
        if self.hub.cfg.next_link and "cursor" not in self.query:
            # --next-link: a hostile "next page" (another host, file://, ...).
            headers["Link"] = f'<{self.hub.cfg.next_link}>; rel="next"'
        elif start + n < len(entries):
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
        self._serve_file(fi, {"ETag": f'"{fi.oid}"', "Accept-Ranges": "bytes"}, _content_type(fi.path))

    def _resolve(self, rtype: str, owner: str, name: str, rev: str, path: str) -> None:
        if self.command not in ("GET", "HEAD"):
            raise Reply(405, "Method Not Allowed")
        repo = self._repo(rtype, owner, name)
        commit = self._check_rev(repo, rev)
        fi = repo.lookup(path)
        if fi is None:
            # X-Repo-Commit on the 404 lets huggingface_hub cache the absence.
            raise Reply(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit})
        if fi.lfs:
            return self._lfs_redirect(fi, commit)
        common = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if self.hub.cfg.legacy_resolve:
            return self._serve_file(fi, dict(common, ETag=f'"{fi.oid}"'), _content_type(fi.path))
        # Today's hub: a 307 with a *relative* Location to the resolve cache,
        # on this same host (so a client keeps its token), keyed by the
        # commit; the query names the original URL and the file's git blob id.
        # The file's own ETag, size and bytes come with the 200 there.
        prefix = "" if rtype == "model" else "datasets/"
        orig = f"/{prefix}{repo.id}/resolve/{rev}/{path}"
        loc = (f"/api/resolve-cache/{rtype}s/{repo.id}/{commit}/{urllib.parse.quote(path, safe='')}"
               f"?{urllib.parse.quote(orig, safe='')}=&etag=%22{fi.oid}%22")
        h = dict(common, **{"Location": loc, "X-Linked-Etag": f'"{fi.oid}"',
                            "Content-Disposition": _disposition("inline", fi.path)})
        self._send(307, f"Temporary Redirect. Redirecting to {loc}".encode(),
                   "text/plain; charset=utf-8", h)

    def _resolve_cache(self, rtype: str, owner: str, name: str, commit: str, path: str) -> None:
        """GET|HEAD /api/resolve-cache/{models,datasets}/OWNER/NAME/COMMIT/PATH?...:
        where the 307 of a small file points. Only the current commit exists."""
        if self.command not in ("GET", "HEAD"):
            raise Reply(405, "Method Not Allowed")
        repo = self._repo(rtype, owner, name)
        current = repo.commit()
        if commit != current:
            raise Reply(404, f"Invalid rev id: {commit}", "RevisionNotFound")
        fi = repo.lookup(path)
        if fi is None:
            raise Reply(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": current})
        if fi.lfs:
            return self._lfs_redirect(fi, current)
        h = {"ETag": f'"{fi.oid}"', "X-Repo-Commit": current, "Accept-Ranges": "bytes",
             "Content-Disposition": _disposition("inline", fi.path)}
        inm = self.headers.get("If-None-Match")
        if inm and (inm.strip() == "*" or fi.oid in (t.strip().removeprefix("W/").strip('"')
                                                      for t in inm.split(","))):
            self._start(304, h, None)
            return
        self._serve_file(fi, h, _content_type(fi.path))

    def _lfs_redirect(self, fi: FileInfo, commit: str) -> None:
        cdn = self._cdn_url(fi)
        body = f"Found. Redirecting to {cdn}".encode()
        # X-Linked-* describe the target blob; the ETag of the 302 itself is
        # not the file's (an Express-style weak tag of the redirect body), so
        # a client that uses it instead of X-Linked-Etag gets caught.
        h = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes",
             "Location": cdn, "X-Linked-Etag": f'"{fi.sha256}"', "X-Linked-Size": fi.size,
             "ETag": f'W/"{len(body):x}-{hashlib.sha1(body).hexdigest()[:27]}"'}
        self._send(302, body, "text/plain; charset=utf-8", h)

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
        path = f"/cdn/repos/{fi.sha256[:2]}/{fi.sha256[2:4]}/{fi.sha256}"
        # Encoded as real CDN links are ('+' for spaces, a bare '*'): a client
        # that decodes and re-encodes the query changes it, and fails.
        disp = urllib.parse.quote_plus(_disposition("attachment", fi.path), safe="*")
        q = f"response-content-disposition={disp}&Expires={expires}"
        kp = "Key-Pair-Id=K3RPWS32NSSJCE"
        sig = self.hub.sign(f"{path}?{q}&{kp}")
        port = self.server.server_address[1]
        return f"http://{host}:{port}{path}?{q}&Signature={sig}&{kp}"

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
        # The signature covers the path and the rest of the query exactly as
        # they were sent: any re-encoding, reordering or added pair breaks it.
        pairs = urllib.parse.urlsplit(self.path).query.split("&")
        sigs = [p[len("Signature="):] for p in pairs if p.startswith("Signature=")]
        signed = f"{self.rawpath}?" + "&".join(p for p in pairs if not p.startswith("Signature="))
        try:
            expires = int(self.query.get("Expires", ["0"])[0])
        except ValueError:
            expires = 0
        if (not HEX64.match(sha) or len(sigs) != 1
                or not hmac.compare_digest(sigs[0], self.hub.sign(signed))):
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
        self._serve_file(FileInfo(sha, path, os.path.getsize(path), "", sha, True), h,
                         "application/octet-stream")

    def _serve_file(self, fi: FileInfo, headers: dict, ctype: str) -> None:
        """The bytes of FI (a fixture file, or an --extra-entry's `data`),
        honouring Range."""
        size = fi.size

        def chunks(start: int, n: int):
            if fi.data is not None:
                return [fi.data[start:start + n]]
            return file_chunks(fi.abspath, start, n)

        rng = parse_range(self.headers.get("Range"), size)
        h = dict(headers, **{"Content-Type": ctype})
        if rng == "unsatisfiable":
            h["Content-Range"] = f"bytes */{size}"
            return self._send(416, b"", ctype, h)
        if rng is None:
            self._start(200, h, size)
            return self._write_body(chunks(0, size), size)
        first, last = rng
        h["Content-Range"] = f"bytes {first}-{last}/{size}"
        n = last - first + 1
        self._start(206, h, n)
        self._write_body(chunks(first, n), n)

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
            with self.hub.req_done:
                # what has been answered is in the log; a request held by a
                # fault is not waited for past half a second
                self.hub.req_done.wait_for(lambda: self.hub.inflight == 0, timeout=0.5)
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
        elif p == "/_debug/ratelimit" and m == "DELETE":
            self.hub.rate_reset()                   # every policy starts a fresh window
            return self._json(200, {"reset": True})
        elif p == "/_debug/health" and m in ("GET", "HEAD"):
            return self._json(200, {"ok": True, "port": self.server.server_address[1],
                                    "root": self.hub.root})
        raise Reply(404, "Not Found", hub_style=False)


def _disposition(kind: str, path: str) -> str:
    """Content-Disposition for a repo file, as the hub writes it; the plain
    filename= is kept to printable ASCII (header values are latin-1)."""
    fname = path.rsplit("/", 1)[-1]
    plain = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in fname)
    return f"{kind}; filename*=UTF-8''{urllib.parse.quote(fname)}; filename=\"{plain}\";"


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
    ap.add_argument("--legacy-resolve", action="store_true",
                    help="small files: a direct 200 on resolve, not today's 307 to /api/resolve-cache")
    ap.add_argument("--rate-limit", metavar="Q/W",
                    help="enforce Q requests per W-second fixed window, per policy (api, resolvers)")
    ap.add_argument("--extra-entry", action="append", default=[], metavar="PATH",
                    help="list a file at this literal path (../x, /abs, a\\b, ...) in every repo; repeatable")
    ap.add_argument("--next-link", metavar="URL",
                    help="the first /tree page's Link rel=\"next\" points here")
    ap.add_argument("--big-size", action="append", default=[], metavar="PATH=N",
                    help="/tree and siblings report PATH's size as the integer N; repeatable")
    a = ap.parse_args(argv)
    if a.gated and not a.token:
        ap.error("--gated needs --token")
    if not os.path.isdir(a.root):
        ap.error(f"--root {a.root}: not a directory")
    rate = None
    if a.rate_limit is not None:
        m = re.fullmatch(r"(\d+)/(\d+)", a.rate_limit)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            ap.error(f"--rate-limit {a.rate_limit}: want QUOTA/SECONDS, e.g. 20/2")
        rate = (int(m.group(1)), int(m.group(2)))
    big = {}
    for spec in a.big_size:
        path, eq, n = spec.rpartition("=")
        if not eq or not path or not re.fullmatch(r"-?\d+", n):
            ap.error(f"--big-size {spec}: want PATH=INTEGER")
        big[path] = int(n)
    if any(not p for p in a.extra_entry):
        ap.error("--extra-entry: empty path")
    cfg = Config(root=a.root, lfs_threshold=a.lfs_threshold, tree_page_size=a.tree_page_size,
                 token=a.token, gated=set(a.gated), cdn_host=a.cdn_host, cdn_ttl=a.cdn_ttl,
                 cdn_reject_auth=a.cdn_reject_auth, first_rows_cell_bytes=a.first_rows_cell_bytes,
                 quiet=a.quiet, legacy_resolve=a.legacy_resolve, rate_limit=rate,
                 extra_entries=a.extra_entry, next_link=a.next_link, big_sizes=big)
    try:
        rules = Faults(KINDS).parse_spec(a.faults)
    except (ValueError, re.error) as e:
        ap.error(f"--faults: {e}")
    server, hub = make_server(cfg, a.port)
    hub.faults.replace(rules)
    q, w = cfg.quota()
    return life.serve(server, a, log, f"root={hub.root} faults={len(rules)} "
                                      f"resolve={'legacy' if cfg.legacy_resolve else '307'} "
                                      f"rate-limit={q}/{w}{'' if rate else ' (not enforced)'}")


if __name__ == "__main__":
    sys.exit(main())
