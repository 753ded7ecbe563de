#!/usr/bin/python3
"""edgelm default model: teacher -> distilled student (+ CE-only control) -> GGUF.

Full run (two commands; see models/MODEL_CARD.md for the numbers they gave):
    /usr/bin/python3 tools/train/prepare.py --out .traindata                 # CPU, deterministic
    PYTHONUNBUFFERED=1 python3 tools/train/train.py --data .traindata --out OUTDIR --seed 1234   # GPU
CPU smoke test of the whole pipeline on a tiny slice (writes only into a temp dir):
    /usr/bin/python3 tools/train/train.py --smoke

Stages: teacher (CE, dropout, best checkpoint by the VAL split) -> student by knowledge distillation
    loss = alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE
-> control student (same shape, init, batches and steps; CE only) -> held-out perplexity
(llama-perplexity method) of all three plus a unigram baseline -> GGUF export of the student ->
independent re-read and logit check -> greedy reference continuations.
The held-out split is only read by the final evaluation, never during training or selection.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gguf  # noqa: E402
from model import Config, Transformer  # noqa: E402

BOS, EOS, UNK = 1, 2, 0
N_CTX_EVAL = 128


def log(*a):
    print(f"[train {time.strftime('%H:%M:%S')}]", *a, flush=True)


# ----------------------------------------------------------------------------- configs
def configs(vocab: int, smoke: bool):
    if smoke:
        teacher = Config(dim=64, n_layers=2, n_heads=4, n_kv_heads=4, hidden_dim=160, vocab_size=vocab,
                         max_seq_len=128, tied=False, dropout=0.1)
        student = Config(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=96, vocab_size=vocab,
                         max_seq_len=128, tied=True)
        return teacher, student
    teacher = Config(dim=384, n_layers=8, n_heads=6, n_kv_heads=6, hidden_dim=1024, vocab_size=vocab,
                     max_seq_len=256, tied=False, dropout=0.1)
    student = Config(dim=192, n_layers=4, n_heads=6, n_kv_heads=2, hidden_dim=512, vocab_size=vocab,
                     max_seq_len=256, tied=True)
    return teacher, student


# ----------------------------------------------------------------------------- data
class Batches:
    """Random windows of seq_len+1 tokens from the training stream; position 0 becomes BOS (as in
    the evaluation, which replaces each chunk's first token with BOS). Seeded: two Batches with the
    same seed yield the same sequence of batches."""

    def __init__(self, data: torch.Tensor, batch: int, seq_len: int, seed: int, device):
        self.data, self.batch, self.seq_len, self.device = data, batch, seq_len, device
        self.g = torch.Generator().manual_seed(seed)
        self.ar = torch.arange(seq_len + 1, device=device)

    def next(self):
        ix = torch.randint(0, self.data.numel() - self.seq_len - 1, (self.batch,), generator=self.g)
        w = self.data[ix.to(self.device)[:, None] + self.ar[None, :]].long()
        x, y = w[:, :-1].clone(), w[:, 1:]
        x[:, 0] = BOS
        return x, y


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def perplexity(model, tokens: np.ndarray, device, n_ctx=N_CTX_EVAL, batch=64, return_nll=False):
    """llama.cpp llama-perplexity: non-overlapping chunks of n_ctx tokens, the first token of each
    replaced by BOS; logits at positions n_ctx/2 .. n_ctx-2 score tokens n_ctx/2+1 .. n_ctx-1
    (n_ctx/2 - 1 = 63 tokens per chunk for n_ctx=128). PPL = exp(mean NLL); the error is
    llama.cpp's: PPL * sqrt(var(NLL) / (count - 1))."""
    was_training = model.training
    model.eval()
    n_chunk = len(tokens) // n_ctx
    first = n_ctx // 2
    chunks = torch.from_numpy(tokens[: n_chunk * n_ctx].astype(np.int64)).view(n_chunk, n_ctx)
    nlls = []
    for i in range(0, n_chunk, batch):
        c = chunks[i:i + batch].to(device)
        x = c.clone()
        x[:, 0] = BOS
        logits = model(x).float()
        lp = F.log_softmax(logits[:, first:n_ctx - 1], dim=-1)
        tgt = c[:, first + 1:n_ctx]
        nlls.append(-lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1).double().cpu())
    model.train(was_training)
    nll = torch.cat(nlls).reshape(-1)
    r = ppl_stats(nll)
    return (r, nll) if return_nll else r


def ppl_stats(nll: torch.Tensor):
    nll = nll.double()
    count = nll.numel()
    mean = nll.mean().item()
    var = (nll.pow(2).mean() - mean * mean).item()
    ppl = math.exp(mean)
    err = ppl * math.sqrt(var / (count - 1)) if var > 0 else 0.0
    return {"ppl": ppl, "ppl_err": err, "nll": mean, "scored_tokens": count}


def unigram_perplexity(train: np.ndarray, tokens: np.ndarray, vocab: int, n_ctx=N_CTX_EVAL):
    """Add-one smoothed unigram model from the TRAIN split, scored on exactly the tokens that
    perplexity() scores."""
    cnt = np.bincount(train.astype(np.int64), minlength=vocab).astype(np.float64)
    p = (cnt + 1.0) / (cnt.sum() + vocab)
    n_chunk = len(tokens) // n_ctx
    first = n_ctx // 2
    ch = tokens[: n_chunk * n_ctx].astype(np.int64).reshape(n_chunk, n_ctx)[:, first + 1:n_ctx]
    return ppl_stats(torch.from_numpy(-np.log(p[ch.reshape(-1)])))


# ----------------------------------------------------------------------------- training
def make_optimizer(model, lr, wd, device):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    kw = {}
    if device.type == "cuda":
        kw["fused"] = True
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, **kw)


def lr_at(step, steps, lr, warmup, min_ratio=0.1):
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def autocast(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def train_model(name, model, data, val, device, *, steps, batch, seq_len, lr, wd=0.1, warmup=100,
                seed=0, teacher=None, alpha=0.0, T=1.0, eval_every=0, keep_best=False, max_seconds=None):
    """Trains `model` in place. With `teacher`, uses the distillation loss. Returns a record."""
    model.train()
    opt = make_optimizer(model, lr, wd, device)
    batches = Batches(data, batch, seq_len, seed, device)
    best = None
    hist = []
    t0 = time.time()
    last_log = t0
    truncated = False
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        x, y = batches.next()
        with autocast(device):
            logits = model(x)
            ce = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(x).float()
                V = logits.size(-1)
                kl = F.kl_div(F.log_softmax(logits.float().view(-1, V) / T, dim=-1),
                              F.log_softmax(t_logits.view(-1, V) / T, dim=-1),
                              reduction="batchmean", log_target=True)
                loss = alpha * T * T * kl + (1 - alpha) * ce
            else:
                loss = ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done = step + 1
        now = time.time()
        if eval_every and (done % eval_every == 0 or done == steps):
            v = perplexity(model, val, device)
            hist.append({"step": done, "train_ce": ce.item(), "val_ppl": v["ppl"], "t": round(now - t0, 1)})
            log(f"{name} step {done}/{steps} ce {ce.item():.4f} loss {loss.item():.4f} val_ppl {v['ppl']:.3f} "
                f"({done / (now - t0):.1f} steps/s)")
            if keep_best and (best is None or v["ppl"] < best[1]):
                best = (done, v["ppl"], {k: t.detach().clone() for k, t in model.state_dict().items()})
        elif now - last_log > 15:
            log(f"{name} step {done}/{steps} ce {ce.item():.4f} loss {loss.item():.4f} ({done / (now - t0):.1f} steps/s)")
            last_log = now
        if max_seconds is not None and now - t0 > max_seconds and done < steps:
            log(f"WARNING: {name} stopped at step {done}/{steps}: over its {max_seconds}s safety limit")
            truncated = True
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    secs = time.time() - t0
    rec = {"name": name, "steps": done, "planned_steps": steps, "batch": batch, "seq_len": seq_len,
           "lr": lr, "wd": wd, "warmup": warmup, "seed": seed, "seconds": round(secs, 1),
           "tokens_seen": done * batch * seq_len, "truncated": truncated, "history": hist}
    if teacher is not None:
        rec.update({"alpha": alpha, "T": T})
    if keep_best and best is not None:
        model.load_state_dict(best[2])
        rec["best_step"], rec["best_val_ppl"] = best[0], best[1]
        log(f"{name}: keeping step {best[0]} (val ppl {best[1]:.3f})")
    model.eval()
    return rec


# ----------------------------------------------------------------------------- export
def gguf_tensors(model: Transformer):
    """(name, row-major float32 array) in llama.cpp order. nn.Linear weight (out, in) -> ne=[in, out]."""
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    c = model.cfg
    out = [("token_embd.weight", sd["tok_embeddings.weight"])]
    for i in range(c.n_layers):
        p = f"layers.{i}."
        out += [
            (f"blk.{i}.attn_norm.weight", sd[p + "attention_norm.weight"]),
            (f"blk.{i}.attn_q.weight", sd[p + "attention.wq.weight"]),
            (f"blk.{i}.attn_k.weight", sd[p + "attention.wk.weight"]),
            (f"blk.{i}.attn_v.weight", sd[p + "attention.wv.weight"]),
            (f"blk.{i}.attn_output.weight", sd[p + "attention.wo.weight"]),
            (f"blk.{i}.ffn_norm.weight", sd[p + "ffn_norm.weight"]),
            (f"blk.{i}.ffn_gate.weight", sd[p + "feed_forward.w1.weight"]),
            (f"blk.{i}.ffn_down.weight", sd[p + "feed_forward.w2.weight"]),
            (f"blk.{i}.ffn_up.weight", sd[p + "feed_forward.w3.weight"]),
        ]
    out += [("output_norm.weight", sd["norm.weight"]), ("output.weight", sd["output.weight"])]
    return out


def gguf_metadata(cfg: Config, vocab: dict, name: str):
    T = gguf.Typed
    return [
        ("general.architecture", T(gguf.STRING, "llama")),
        ("general.name", T(gguf.STRING, name)),
        ("general.alignment", T(gguf.U32, 32)),
        ("general.file_type", T(gguf.U32, 0)),
        ("llama.context_length", T(gguf.U32, cfg.max_seq_len)),
        ("llama.embedding_length", T(gguf.U32, cfg.dim)),
        ("llama.block_count", T(gguf.U32, cfg.n_layers)),
        ("llama.feed_forward_length", T(gguf.U32, cfg.hidden_dim)),
        ("llama.rope.dimension_count", T(gguf.U32, cfg.head_dim)),
        ("llama.attention.head_count", T(gguf.U32, cfg.n_heads)),
        ("llama.attention.head_count_kv", T(gguf.U32, cfg.n_kv_heads)),
        ("llama.attention.layer_norm_rms_epsilon", T(gguf.F32, cfg.norm_eps)),
        ("llama.rope.freq_base", T(gguf.F32, cfg.rope_theta)),
        ("llama.vocab_size", T(gguf.U32, cfg.vocab_size)),
        ("tokenizer.ggml.model", T(gguf.STRING, "llama")),
        ("tokenizer.ggml.tokens", T(gguf.ARRAY, vocab["tokens"], elem=gguf.STRING)),
        ("tokenizer.ggml.scores", T(gguf.ARRAY, vocab["scores"], elem=gguf.F32)),
        ("tokenizer.ggml.token_type", T(gguf.ARRAY, vocab["types"], elem=gguf.I32)),
        ("tokenizer.ggml.bos_token_id", T(gguf.U32, BOS)),
        ("tokenizer.ggml.eos_token_id", T(gguf.U32, EOS)),
        ("tokenizer.ggml.unknown_token_id", T(gguf.U32, UNK)),
        ("tokenizer.ggml.add_bos_token", T(gguf.BOOL, True)),
        ("tokenizer.ggml.add_eos_token", T(gguf.BOOL, False)),
    ]


def model_from_gguf(path: str, device) -> Transformer:
    """Builds a fresh PyTorch model from a GGUF file using only the independent reader."""
    kv, _, ts = gguf.read_gguf(path)
    assert kv["general.architecture"] == "llama"
    cfg = Config(dim=kv["llama.embedding_length"], n_layers=kv["llama.block_count"],
                 n_heads=kv["llama.attention.head_count"], n_kv_heads=kv["llama.attention.head_count_kv"],
                 hidden_dim=kv["llama.feed_forward_length"], vocab_size=len(kv["tokenizer.ggml.tokens"]),
                 max_seq_len=kv["llama.context_length"], tied="output.weight" not in ts,
                 norm_eps=kv["llama.attention.layer_norm_rms_epsilon"], rope_theta=kv["llama.rope.freq_base"])
    m = Transformer(cfg)
    if "output.weight" in ts:  # untie so the file's copy is used exactly as written
        m.output.weight = torch.nn.Parameter(torch.empty(cfg.vocab_size, cfg.dim))
    names = {"token_embd.weight": "tok_embeddings.weight", "output_norm.weight": "norm.weight",
             "output.weight": "output.weight"}
    sub = {"attn_norm": "attention_norm", "attn_q": "attention.wq", "attn_k": "attention.wk",
           "attn_v": "attention.wv", "attn_output": "attention.wo", "ffn_norm": "ffn_norm",
           "ffn_gate": "feed_forward.w1", "ffn_down": "feed_forward.w2", "ffn_up": "feed_forward.w3"}
    sd = {}
    for n, (arr, ne, ty) in ts.items():
        assert ty == gguf.GGML_TYPE_F32
        if n in names:
            key = names[n]
        else:
            _, i, part, _ = n.split(".")
            key = f"layers.{i}.{sub[part]}.weight"
        sd[key] = torch.from_numpy(arr.copy())
    missing = set(k for k in m.state_dict()) - set(sd)
    assert not missing, missing
    m.load_state_dict(sd, strict=True)
    return m.to(device).eval()


def verify_gguf(path: str, model: Transformer, vocab: dict, device, sample: np.ndarray):
    kv, kt, ts = gguf.read_gguf(path)
    c = model.cfg
    exp = {"general.architecture": "llama", "llama.embedding_length": c.dim, "llama.block_count": c.n_layers,
           "llama.feed_forward_length": c.hidden_dim, "llama.attention.head_count": c.n_heads,
           "llama.attention.head_count_kv": c.n_kv_heads, "llama.rope.dimension_count": c.head_dim,
           "llama.vocab_size": c.vocab_size, "tokenizer.ggml.model": "llama", "general.alignment": 32,
           "llama.context_length": c.max_seq_len, "tokenizer.ggml.bos_token_id": BOS,
           "tokenizer.ggml.eos_token_id": EOS, "tokenizer.ggml.unknown_token_id": UNK,
           "tokenizer.ggml.add_bos_token": True}
    for k, v in exp.items():
        assert kv[k] == v, (k, kv[k], v)
    assert kt["llama.rope.freq_base"] == gguf.F32 and kv["llama.rope.freq_base"] == 10000.0
    assert abs(kv["llama.attention.layer_norm_rms_epsilon"] - 1e-5) < 1e-12
    assert kv["tokenizer.ggml.tokens"] == vocab["tokens"]
    assert np.array_equal(kv["tokenizer.ggml.scores"], np.asarray(vocab["scores"], np.float32))
    assert np.array_equal(kv["tokenizer.ggml.token_type"], np.asarray(vocab["types"], np.int32))
    want = gguf_tensors(model)
    assert list(ts) == [n for n, _ in want]
    for n, a in want:
        arr, ne, ty = ts[n]
        assert ne == list(reversed(a.shape)) and ty == 0 and np.array_equal(arr, a), n
    shapes = {"token_embd.weight": [c.dim, c.vocab_size], "blk.0.attn_q.weight": [c.dim, c.dim],
              "blk.0.attn_k.weight": [c.dim, c.kv_dim], "blk.0.attn_v.weight": [c.dim, c.kv_dim],
              "blk.0.ffn_gate.weight": [c.dim, c.hidden_dim], "blk.0.ffn_down.weight": [c.hidden_dim, c.dim],
              "blk.0.ffn_up.weight": [c.dim, c.hidden_dim], "output.weight": [c.dim, c.vocab_size]}
    for n, ne in shapes.items():
        assert ts[n][1] == ne, (n, ts[n][1], ne)
    # the reloaded model gives bit-identical logits
    m2 = model_from_gguf(path, device)
    x = torch.from_numpy(sample[: 2 * N_CTX_EVAL].astype(np.int64)).view(2, N_CTX_EVAL).to(device)
    x[:, 0] = BOS
    with torch.no_grad():
        a, b = model.eval()(x), m2(x)
    diff = (a - b).abs().max().item()
    # the weights were compared bit for bit above; the logits may differ only by kernel choice
    assert diff <= 1e-4, f"reloaded logits differ by {diff}"
    return {"tensors": len(ts), "kv": len(kv), "logit_max_abs_diff": diff}


def verify_reader_on_reference(repo: Path):
    """Reads stories260K.gguf (written by llama.cpp's gguf-py) with our reader and compares its
    tensors with the llama2.c checkpoint stories260K.bin, when the shared test models exist."""
    for base in (repo / "shared" / "models", repo.parent / "shared" / "models", Path("/work/shared/models")):
        g, b = base / "stories260K.gguf", base / "stories260K.bin"
        if g.exists() and b.exists():
            break
    else:
        log("stories260K.gguf not found; skipping the reference-file reader check")
        return None
    kv, kt, ts = gguf.read_gguf(str(g))
    raw = b.read_bytes()
    dim, hidden, L, H, KVH, V, S = np.frombuffer(raw[:28], dtype="<i4")
    w = np.frombuffer(raw[28:], dtype="<f4")
    kvd = dim // H * KVH
    o = 0

    def take(*shape):
        nonlocal o
        n = int(np.prod(shape))
        a = w[o:o + n].reshape(shape)
        o += n
        return a
    tok = take(V, dim)
    att = take(L, dim)
    wq = take(L, dim, dim)
    wk = take(L, kvd, dim)
    wv = take(L, kvd, dim)
    wo = take(L, dim, dim)
    ffn = take(L, dim)
    w1 = take(L, hidden, dim)
    w2 = take(L, dim, hidden)
    w3 = take(L, hidden, dim)
    fin = take(dim)
    assert kv["llama.embedding_length"] == dim and kv["llama.block_count"] == L
    assert kv["llama.attention.head_count_kv"] == KVH and len(kv["tokenizer.ggml.tokens"]) == V
    pairs = [("token_embd.weight", tok), ("output_norm.weight", fin), ("output.weight", tok)]
    for i in range(L):
        pairs += [(f"blk.{i}.attn_norm.weight", att[i]), (f"blk.{i}.attn_q.weight", wq[i]),
                  (f"blk.{i}.attn_k.weight", wk[i]), (f"blk.{i}.attn_v.weight", wv[i]),
                  (f"blk.{i}.attn_output.weight", wo[i]), (f"blk.{i}.ffn_norm.weight", ffn[i]),
                  (f"blk.{i}.ffn_gate.weight", w1[i]), (f"blk.{i}.ffn_down.weight", w2[i]),
                  (f"blk.{i}.ffn_up.weight", w3[i])]
    for n, a in pairs:
        assert np.array_equal(ts[n][0], a), f"stories260K: {n} differs from the llama2.c checkpoint"
    assert len(ts) == len(pairs)
    log(f"reader check: stories260K.gguf ({len(kv)} keys, {len(ts)} tensors) matches stories260K.bin bit for bit")
    return {"file": str(g), "keys": len(kv), "tensors": len(ts)}


# ----------------------------------------------------------------------------- greedy + decode
@torch.no_grad()
def greedy(model, ids, n_new, device):
    """Argmax continuation, full recompute each step, fp32. Returns (new ids, min top1-top2 margin)."""
    model.eval()
    seq = list(ids)
    new, margins = [], []
    for _ in range(n_new):
        if len(seq) >= model.cfg.max_seq_len:
            break
        x = torch.tensor([seq], dtype=torch.long, device=device)
        logits = model(x)[0, -1].float()
        top2 = torch.topk(logits, 2)
        nxt = int(top2.indices[0])
        margins.append(float(top2.values[0] - top2.values[1]))
        if nxt == EOS:
            break
        seq.append(nxt)
        new.append(nxt)
    return new, (min(margins) if margins else None)


def decode(ids, tokens):
    """SentencePiece-style decode from the vocabulary alone: byte pieces <0xXX> become bytes,
    U+2581 becomes a space, the leading space of the text is dropped; control tokens print nothing."""
    out = bytearray()
    for i in ids:
        t = tokens[i]
        if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            out.append(int(t[3:5], 16))
        elif t in ("<s>", "</s>", "<unk>"):
            continue
        else:
            out += t.replace("\u2581", " ").encode("utf-8")
    s = out.decode("utf-8", errors="replace")
    return s[1:] if s.startswith(" ") else s


# ----------------------------------------------------------------------------- main
def run(args):
    t_start = time.time()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(1 if args.smoke else (os.cpu_count() or 1))  # 1: tiny ops; no OpenMP spin under load
    data_dir, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = json.loads((data_dir / "vocab.json").read_text())
    prompts = json.loads((data_dir / "prompts.json").read_text())
    train = np.load(data_dir / "train.npy")
    val = np.load(data_dir / "val.npy")
    heldout = np.load(data_dir / "heldout.npy")
    V = len(vocab["tokens"])
    tcfg, scfg = configs(V, args.smoke)
    env = {"torch": torch.__version__, "device": str(device),
           "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
           "python": sys.version.split()[0]}
    log("env", env, f"train {train.size} val {val.size} heldout {heldout.size} tokens")
    train_t = torch.from_numpy(train.astype(np.int32)).to(device)
    results = {"env": env, "args": vars(args), "data_meta": json.loads((data_dir / "meta.json").read_text())}
    results["data_meta"].pop("heldout_docs", None)
    results["data_meta"].pop("val_docs", None)

    def fresh(cfg, seed):
        torch.manual_seed(seed)
        return Transformer(cfg).to(device)

    # --- teacher
    teacher = fresh(tcfg, args.seed)
    log(f"teacher {tcfg.to_dict()} params {teacher.n_params():,}")
    rec_t = train_model("teacher", teacher, train_t, val, device, steps=args.teacher_steps, batch=args.batch,
                        seq_len=tcfg.max_seq_len, lr=args.teacher_lr, warmup=args.warmup, seed=args.seed + 1,
                        eval_every=args.eval_every, keep_best=True, max_seconds=args.max_stage_seconds)
    for p in teacher.parameters():
        p.requires_grad_(False)
    rec_t["params"] = teacher.n_params()
    rec_t["config"] = tcfg.to_dict()

    # --- students: distilled, and the CE-only control (same init seed, batch seed, steps)
    recs = {}
    students = {}
    variants = [("student", args.alpha, args.temperature)] + [
        (f"student_a{a}_T{t}", a, t) for a, t in args.sweep] + [("control", 0.0, 1.0)]
    for name, alpha, T in variants:
        m = fresh(scfg, args.seed + 100)
        rec = train_model(name, m, train_t, val, device, steps=args.student_steps, batch=args.batch,
                          seq_len=scfg.max_seq_len, lr=args.student_lr, warmup=args.warmup, seed=args.seed + 2,
                          teacher=teacher if name != "control" else None, alpha=alpha, T=T,
                          eval_every=args.eval_every, keep_best=False, max_seconds=args.max_stage_seconds)
        rec["params"] = m.n_params()
        rec["config"] = scfg.to_dict()
        rec["final_val"] = perplexity(m, val, device)
        log(f"{name}: val ppl {rec['final_val']['ppl']:.3f}")
        recs[name], students[name] = rec, m

    # --- held-out evaluation (fp32, TF32 off); the held-out split is touched only here
    ev = {"n_ctx": N_CTX_EVAL, "heldout_tokens": int(heldout.size)}
    ev["teacher"] = perplexity(teacher, heldout, device)
    for name, m in students.items():
        ev[name] = perplexity(m, heldout, device)
    ev["unigram"] = unigram_perplexity(train, heldout, V)
    for k in ["teacher"] + list(students) + ["unigram"]:
        log(f"held-out PPL {k:>24s}: {ev[k]['ppl']:.4f} +/- {ev[k]['ppl_err']:.4f}  ({ev[k]['scored_tokens']} tokens)")
    ev["student_beats_control"] = ev["student"]["ppl"] < ev["control"]["ppl"]
    ev["student_below_half_unigram"] = ev["student"]["ppl"] <= 0.5 * ev["unigram"]["ppl"]
    results.update({"teacher": rec_t, "students": recs, "heldout_eval": ev})

    # --- export the distilled student
    student = students["student"]
    gpath = out / "edgelm-student-f32.gguf"
    size = gguf.write_gguf(str(gpath), gguf_metadata(scfg, vocab, args.name), gguf_tensors(student))
    log(f"wrote {gpath} ({size:,} bytes)")
    if not args.smoke and size >= 10_000_000:
        raise SystemExit("GGUF over the 10 MB budget")
    results["export"] = {"file": gpath.name, "bytes": size,
                         "stored_floats": int(sum(a.size for _, a in gguf_tensors(student)))}
    results["export"]["verify"] = verify_gguf(str(gpath), student, vocab, device, heldout)
    results["export"]["reference_reader_check"] = verify_reader_on_reference(HERE.parent.parent)
    log("GGUF re-read OK:", results["export"]["verify"])
    m2 = model_from_gguf(str(gpath), device)
    results["export"]["heldout_from_gguf"] = perplexity(m2, heldout, device)

    # --- greedy references, from the model re-loaded from the GGUF file (fp32)
    rows, greedy_out = [], []
    for p in prompts:
        new, margin = greedy(m2, p["ids"], args.greedy_tokens, device)
        rows.append(f"{p['prompt']}\t{' '.join(map(str, p['ids']))}\t{' '.join(map(str, new))}")
        text = decode(p["ids"][1:] + new, vocab["tokens"])
        greedy_out.append({"prompt": p["prompt"], "ids": p["ids"], "new": new, "text": text, "min_margin": margin})
        log(f"greedy {p['prompt']!r} (min top1-top2 logit margin {margin:.4g}): {text!r}")
    (out / "student_greedy.tsv").write_text("\n".join(rows) + "\n")
    results["greedy"] = greedy_out
    results["total_seconds"] = round(time.time() - t_start, 1)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    if args.save_pt:
        torch.save({"config": scfg.to_dict(), "state_dict": student.state_dict()}, out / "student.pt")
    log(f"done in {results['total_seconds']}s")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder written by prepare.py")
    ap.add_argument("--out", help="output folder")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run of the whole pipeline in a temp dir")
    ap.add_argument("--keep", action="store_true", help="with --smoke: keep the temp dir")
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--name", default="edgelm-student")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--teacher-steps", type=int, default=2000)
    ap.add_argument("--teacher-lr", type=float, default=1e-3)
    ap.add_argument("--student-steps", type=int, default=4000)
    ap.add_argument("--student-lr", type=float, default=2e-3)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--sweep", default="", help="extra distilled students, e.g. '0.5:1,0.9:2' (alpha:T)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--greedy-tokens", type=int, default=60)
    ap.add_argument("--max-stage-seconds", type=float, default=None, help="safety stop per training stage")
    ap.add_argument("--save-pt", action="store_true")
    args = ap.parse_args()
    args.sweep = [tuple(float(v) for v in s.split(":")) for s in args.sweep.split(",") if s]
    if args.smoke:
        import prepare
        tmp = Path(tempfile.mkdtemp(prefix="edgelm-smoke-"))
        try:
            prepare.prepare(tmp / "data", Path(os.environ.get("EDGELM_TRAIN_CACHE", "/tmp/edgelm-train-cache")),
                            vocab_size=512, smoke=True)
            args.data, args.out = str(tmp / "data"), str(tmp / "out")
            args.teacher_steps, args.student_steps, args.batch, args.eval_every = 16, 12, 8, 8
            args.warmup, args.greedy_tokens = 4, 12
            args.teacher_lr = args.student_lr = 3e-3
            r = run(args)
            assert r["export"]["verify"]["logit_max_abs_diff"] == 0.0  # CPU: same kernels, same bits
            assert (Path(args.out) / "student_greedy.tsv").read_text().count("\n") == len(prepare.PROMPTS)
            log("SMOKE OK")
        finally:
            if args.keep:
                log("kept", tmp)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        return
    if not (args.data and args.out):
        ap.error("--data and --out are required (or use --smoke)")
    run(args)


if __name__ == "__main__":
    main()
