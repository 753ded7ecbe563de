#!/usr/bin/python3
"""CPU data preparation: corpus -> split -> SentencePiece BPE tokenizer -> uint16 token arrays.

    /usr/bin/python3 tools/train/prepare.py --out .traindata            # full data (about 1 min)
    /usr/bin/python3 tools/train/prepare.py --out /tmp/x --smoke        # small slice

Writes into --out:
    tokenizer.model            SentencePiece model (BPE, byte fallback)
    vocab.json                 tokens / scores / token_type as they go into the GGUF
    train.npy val.npy heldout.npy   uint16 token streams (each split tokenized as ONE text, no BOS)
    heldout.txt                the held-out text exactly as tokenized
    prompts.json               fixed prompts and their ids ([BOS] + sp.encode(prompt))
    meta.json                  counts, hashes, settings
Everything here is deterministic (the split is a hash of document ids; SentencePiece's BPE
trainer is deterministic for a fixed input, and we run it with relative paths so the trainer
spec stored in the model does not depend on the output folder).
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402

PROMPTS = ["The king said", "In the beginning", "She opened the door and"]
BOS, EOS, UNK = 1, 2, 0


def log(*a):
    print("[prepare]", *a, flush=True)


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# ------------------------------------------------------------------ llama.cpp-style SPM tokenizer
def llama_spm_tokenize(text: str, tokens, scores, add_space_prefix=True):
    """Re-implementation of llama.cpp's llm_tokenizer_spm (the path a GGUF with
    tokenizer.ggml.model="llama" takes): escape ' ' as U+2581, prefix one, merge adjacent symbols
    by the highest score of the merged token (leftmost first on ties), then map each symbol to its
    token or, if it is none, to its <0xXX> byte tokens. Used to prove that the vocabulary we ship
    tokenizes exactly like SentencePiece did for training."""
    tok_id = {t: i for i, t in enumerate(tokens)}
    s = text.replace(" ", "\u2581")
    if add_space_prefix:
        s = "\u2581" + s
    sym = list(s)  # one symbol per code point
    n = len(sym)
    prev = list(range(-1, n - 1))
    nxt = list(range(1, n + 1))
    nxt[-1] = -1 if n else -1
    alive = [True] * n
    heap = []
    rev_merge = {}

    def add_bigram(l, r):
        if l < 0 or r < 0:
            return
        t = sym[l] + sym[r]
        i = tok_id.get(t)
        if i is None:
            return
        heapq.heappush(heap, (-scores[i], l, t))
        rev_merge[t] = (sym[l], sym[r])

    for i in range(n - 1):
        add_bigram(i, i + 1)
    while heap:
        _, l, t = heapq.heappop(heap)
        if not alive[l]:
            continue
        r = nxt[l]
        if r < 0 or sym[l] + sym[r] != t:
            continue
        sym[l] = t
        alive[r] = False
        nxt[l] = nxt[r]
        if nxt[r] >= 0:
            prev[nxt[r]] = l
        add_bigram(prev[l], l)
        add_bigram(l, nxt[l])
    out = []

    def resegment(t):
        i = tok_id.get(t)
        if i is not None:
            out.append(i)
            return
        if t in rev_merge:
            a, b = rev_merge[t]
            resegment(a)
            resegment(b)
            return
        for byte in t.encode("utf-8"):
            out.append(tok_id[f"<0x{byte:02X}>"])

    i = 0 if n else -1
    while i >= 0 and i < n:
        if alive[i]:
            resegment(sym[i])
        i = nxt[i]
    return out


def vocab_of(sp):
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        if sp.is_control(i):
            t = 3
        elif sp.is_unknown(i):
            t = 2
        elif sp.is_byte(i):
            t = 6
        elif sp.is_unused(i):
            t = 5
        else:
            t = 1
        types.append(t)
    return tokens, scores, types


def prepare(out: Path, cache: Path, vocab_size: int = 2048, smoke: bool = False,
            heldout_frac: float = 0.06, val_frac: float = 0.02):
    import numpy as np
    import sentencepiece as spm

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    splits = corpus.build(cache, heldout_frac, val_frac)
    if smoke:  # a small slice, every source represented
        def take(docs, limit):
            kjv = [d for d in docs if d[0].startswith("kjv/")]
            brown = [d for d in docs if d[0].startswith("brown/")]
            res, n = [], 0
            for a, b in zip(kjv, brown):
                for d in (a, b):
                    if n < limit:
                        res.append(d)
                        n += len(d[1])
            return res
        splits = {"train": take(splits["train"], 250_000), "val": take(splits["val"], 12_000),
                  "heldout": take(splits["heldout"], 20_000)}
    texts = {k: "\n".join(t for _, t in v) + "\n" for k, v in splits.items()}
    for k, v in splits.items():
        log(f"{k}: {len(v)} documents, {len(texts[k].encode())} bytes")
    if len(texts["heldout"].encode()) > 1_000_000:
        raise SystemExit("held-out text over 1 MB")

    # -- tokenizer: trained on the training split only
    cwd = os.getcwd()
    os.chdir(out)
    try:
        with open("sp_input.txt", "w", encoding="utf-8") as f:
            for _, t in splits["train"]:
                for line in corpus.sp_training_lines(t):
                    f.write(line + "\n")
        spm.SentencePieceTrainer.train(
            input="sp_input.txt", model_prefix="tokenizer", model_type="bpe", vocab_size=vocab_size,
            byte_fallback=True,
            # identity normalisation and no whitespace squeezing: llama.cpp's "llama" tokenizer
            # applies no normaliser, so this is what makes sp.encode() == llama.cpp tokenization
            # (with SentencePiece's default nmt_nfkc, "\n" would silently become " ").
            normalization_rule_name="identity", remove_extra_whitespaces=False,
            num_threads=2, minloglevel=2)
        os.remove("sp_input.txt")
        os.remove("tokenizer.vocab")
    finally:
        os.chdir(cwd)
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    assert sp.bos_id() == BOS and sp.eos_id() == EOS and sp.unk_id() == UNK
    tokens, scores, types = vocab_of(sp)
    (out / "vocab.json").write_text(json.dumps({"tokens": tokens, "scores": scores, "types": types}))
    log(f"tokenizer: {len(tokens)} pieces, {time.time() - t0:.1f}s")

    # -- tokenize each split as one text (no BOS)
    counts = {}
    for k, text in texts.items():
        ids = np.asarray(sp.encode(text), dtype=np.int64)
        assert ids.max() < 65536
        np.save(out / f"{k}.npy", ids.astype(np.uint16))
        counts[k] = int(ids.size)
        log(f"{k}: {ids.size} tokens ({len(text) / ids.size:.2f} chars/token)")
    (out / "heldout.txt").write_bytes(texts["heldout"].encode("utf-8"))

    prompts = [{"prompt": p, "ids": [BOS] + sp.encode(p)} for p in PROMPTS]
    (out / "prompts.json").write_text(json.dumps(prompts, indent=1))

    # -- proof that the GGUF vocabulary tokenizes like SentencePiece (llama.cpp algorithm)
    checks = [p for p in PROMPTS] + ["Hello, world!  Two  spaces\nand a newline.", "caf\u00e9 \u00fcber 2024 \u2603"]
    ho_lines = texts["heldout"].split("\n")
    checks += ho_lines[: (6 if smoke else 40)]
    checks.append("\n".join(ho_lines[:3]))
    for c in checks:
        a, b = sp.encode(c), llama_spm_tokenize(c, tokens, scores)
        if a != b:
            raise SystemExit(f"llama-style tokenization differs from sentencepiece on {c[:60]!r}:\n{a[:40]}\n{b[:40]}")
    log(f"llama.cpp-style tokenizer == sentencepiece on {len(checks)} texts")

    meta = {
        "vocab_size": len(tokens), "tokens": counts,
        "documents": {k: len(v) for k, v in splits.items()},
        "bytes": {k: len(t.encode()) for k, t in texts.items()},
        "heldout_docs": [d for d, _ in splits["heldout"]],
        "val_docs": [d for d, _ in splits["val"]],
        "sha256": {f: sha256_bytes((out / f).read_bytes())
                   for f in ["tokenizer.model", "heldout.txt", "train.npy", "val.npy", "heldout.npy"]},
        "smoke": smoke, "heldout_frac": heldout_frac, "val_frac": val_frac,
        "sentencepiece": spm.__version__ if hasattr(spm, "__version__") else "?",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    log(f"done in {time.time() - t0:.1f}s -> {out}")
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("EDGELM_TRAIN_CACHE", "/tmp/edgelm-train-cache")),
                    help="where the npm corpus tarball is packed and unpacked")
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get missing python packages")
    a = ap.parse_args()
    if not a.no_install:
        corpus.ensure_python_packages()
    prepare(a.out, a.cache, a.vocab, a.smoke)


if __name__ == "__main__":
    main()
