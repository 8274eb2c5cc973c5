#!/usr/bin/env python3
"""The reference for ds-tokenize: Hugging Face `tokenizers`.

  hf_tokenize.py encode TOKENIZER [FILE]   JSONL with "text" -> one line of
                                           ids (a JSON list) per record
  hf_tokenize.py decode TOKENIZER [FILE]   JSONL with "ids" -> one JSON
                                           string per record
  hf_tokenize.py corpus MAX_BYTES          a varied JSONL corpus of text
                                           already on this machine
  hf_tokenize.py codepoints [STEP]         every code point (every STEP-th
                                           beyond plane 3) in the contexts
                                           that tell its classes apart

encode is Tokenizer.encode(text, add_special_tokens=False), decode is
Tokenizer.decode(ids, skip_special_tokens=False): what ds-tokenize must
match id for id and byte for byte.
"""
import gzip
import json
import os
import sys
import sysconfig


def records(path):
    f = open(path, encoding="utf-8") if path and path != "-" else sys.stdin
    for line in f:
        if line.strip():
            yield json.loads(line)


def encode(tok_path, path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    out = sys.stdout
    batch = []

    def flush():
        for e in tok.encode_batch(batch, add_special_tokens=False):
            out.write(json.dumps(e.ids, separators=(",", ":")) + "\n")
        batch.clear()

    for r in records(path):
        batch.append(r["text"])
        if len(batch) >= 512:
            flush()
    flush()


def decode(tok_path, path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    for r in records(path):
        s = tok.decode(r["ids"], skip_special_tokens=False)
        sys.stdout.write(json.dumps(s, ensure_ascii=False) + "\n")


# ---- the corpus -----------------------------------------------------------

def text_files():
    """Files of prose and code in many languages and scripts, in a fixed
    order: localized man pages first (Cyrillic, CJK, Latin with accents),
    then locale definitions, Python's own sources and tests, docs."""
    roots = []
    man = "/usr/share/man"
    if os.path.isdir(man):
        roots += [os.path.join(man, d) for d in sorted(os.listdir(man)) if not d.startswith("man")]
        roots += [os.path.join(man, "man1"), os.path.join(man, "man7")]
    roots += ["/usr/share/i18n/locales", sysconfig.get_paths()["stdlib"], "/usr/share/doc"]
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                yield os.path.join(d, f)


def read_text(path):
    try:
        if os.path.islink(path) or os.path.getsize(path) > 4 << 20:
            return None
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".gz"):
            data = gzip.decompress(data)
        if b"\0" in data:
            return None
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None


def corpus(max_bytes):
    """Whole files (long pre-tokens, CRLF, long runs of spaces survive) and
    paragraphs; every root gets a share so that no one kind of text fills
    the budget."""
    total, n = 0, 0
    per_root = {}
    share = max_bytes // 6
    for path in text_files():
        root = "/".join(path.split("/")[:5])
        if per_root.get(root, 0) > share:
            continue
        s = read_text(path)
        if not s or not s.strip():
            continue
        s = s[:200000]
        pieces = [s] if n % 3 == 0 else [p for p in s.split("\n\n") if p]
        for p in pieces:
            sys.stdout.write(json.dumps({"text": p}, ensure_ascii=False) + "\n")
            b = len(p.encode())
            total += b
            per_root[root] = per_root.get(root, 0) + b
        n += 1
        if total >= max_bytes:
            break


def codepoints(step):
    """Each code point c in contexts that separate letters, digits, spaces
    and the rest in the Split regex, and that NFC composes or reorders."""
    cps = [c for c in range(0x40000) if not 0xD800 <= c < 0xE000]
    cps += list(range(0x40000, 0x110000, step))
    for i in range(0, len(cps), 256):
        parts = []
        for c in cps[i:i + 256]:
            ch = chr(c)
            parts.append(f"x{ch}{ch}y {ch}1'{ch}a{ch}\u0301{ch}\u0308 \u1100{ch}\n")
        sys.stdout.write(json.dumps({"text": "".join(parts)}) + "\n")


def main(argv):
    if len(argv) >= 2 and argv[0] == "encode":
        encode(argv[1], argv[2] if len(argv) > 2 else None)
    elif len(argv) >= 2 and argv[0] == "decode":
        decode(argv[1], argv[2] if len(argv) > 2 else None)
    elif len(argv) == 2 and argv[0] == "corpus":
        corpus(int(argv[1]))
    elif argv and argv[0] == "codepoints":
        codepoints(int(argv[1]) if len(argv) > 1 else 1)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
