#!/usr/bin/env bash
# tests/cli/template.sh EDGELM_CMD... - `edgelm template` against the jinja2 reference renderings of
# tests/data/chat_templates/expected.json (tools/fixtures/render_chat_templates.py): for every real
# template and every conversation rendered without tools, a tokenizer_config.json and a messages
# file are written, and the CLI's stdout must equal jinja2's output byte for byte (with and
# without --no-generation-prompt); raise_exception cases must fail with the template's message.
# Also: a GGUF without a template is an error unless --chat-template NAME; bad messages files are
# errors (exit 1, one stderr line). Needs python3 (skipped without it).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
command -v python3 >/dev/null || { echo "template.sh: no python3, skipped"; exit 0; }
[ $# -ge 1 ] || { echo "usage: $0 EDGELM_CMD..."; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$repo" "$tmp" "$@" <<'PY'
import json, os, subprocess, sys
repo, tmp, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
d = os.path.join(repo, "tests", "data", "chat_templates")
exp = json.load(open(os.path.join(d, "expected.json"), encoding="utf-8"))
fails = checked = 0
def run(args):
    return subprocess.run(cmd + ["template"] + args, capture_output=True)
for c in exp["cases"]:
    if c["conversation"] in exp["with_tools"]:
        continue
    t = json.load(open(os.path.join(d, c["template"] + ".json"), encoding="utf-8"))
    if "strftime_now" in t["chat_template"]:  # the CLI formats the real clock; the fixture a fixed date
        continue
    cfg = os.path.join(tmp, "tokenizer_config.json")
    json.dump({"chat_template": t["chat_template"], "bos_token": t["bos_token"],
               "eos_token": {"content": t["eos_token"]} if t["eos_token"] else None}, open(cfg, "w", encoding="utf-8"))
    msgs = os.path.join(tmp, "messages.json")
    json.dump(exp["conversations"][c["conversation"]], open(msgs, "w", encoding="utf-8"), ensure_ascii=False)
    args = ["-m", tmp, "--messages", msgs] + ([] if c["add_generation_prompt"] else ["--no-generation-prompt"])
    r = run(args)
    checked += 1
    name = "%s/%s/%s" % (c["template"], c["conversation"], c["add_generation_prompt"])
    if "output" in c:
        if r.returncode != 0 or r.stdout != c["output"].encode("utf-8"):
            fails += 1
            print("FAIL", name, r.returncode, r.stderr.decode(errors="replace")[:200])
    else:
        err = r.stderr.decode(errors="replace")
        if r.returncode != 1 or err.count("\n") != 1 or (c["error_type"] == "TemplateError" and c["error"] not in err):
            fails += 1
            print("FAIL (expected an error)", name, r.returncode, err[:200])
# errors of the command itself
def expect_error(args, what):
    global fails, checked
    r = run(args)
    checked += 1
    if r.returncode != 1 or r.stderr.decode(errors="replace").count("\n") != 1:
        fails += 1
        print("FAIL (expected one error line)", what, r.returncode, r.stderr[:200])
bad = os.path.join(tmp, "bad.json")
open(bad, "w").write('[{"role": "", "content": "x"}]')
expect_error(["--chat-template", "chatml", "--messages", bad], "empty role")
open(bad, "w").write('[{"role": "user", "content": 3}]')
expect_error(["--chat-template", "chatml", "--messages", bad], "content not a string")
open(bad, "w").write('{"role": "user"')
expect_error(["--chat-template", "chatml", "--messages", bad], "not JSON")
good = os.path.join(tmp, "good.json")
open(good, "w").write('[{"role": "user", "content": "Hi"}]')
expect_error(["--chat-template", "nonesuch", "--messages", good], "unknown built-in")
expect_error(["--messages", good], "no model")
cfg = os.path.join(tmp, "tokenizer_config.json")
json.dump({"chat_template": "{% for m in messages %}{{ m.content | nosuchfilter }}{% endfor %}"}, open(cfg, "w"))
expect_error(["-m", tmp, "--messages", good], "unsupported template")
r = run(["-m", tmp, "--chat-template", "chatml", "--messages", good])
checked += 1
if r.returncode != 0 or r.stdout != b"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n":
    fails += 1
    print("FAIL --chat-template overrides the model's template", r.returncode, r.stderr[:200])
# A GGUF with tokenizer.chat_template: bos/eos strings come from tokenizer.ggml.tokens[bos/eos id].
import struct
def gs(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b
toks = ["<unk>", "<s>", "</s>", "a"]
kv = [gs("general.architecture") + struct.pack("<I", 8) + gs("llama"),
      gs("tokenizer.chat_template") + struct.pack("<I", 8) + gs("{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}"),
      gs("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, len(toks)) + b"".join(gs(t) for t in toks),
      gs("tokenizer.ggml.bos_token_id") + struct.pack("<II", 4, 1),
      gs("tokenizer.ggml.eos_token_id") + struct.pack("<II", 4, 2)]
blob = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + b"".join(kv)
blob += b"\0" * ((32 - len(blob) % 32) % 32)
gpath = os.path.join(tmp, "tpl.gguf")
open(gpath, "wb").write(blob)
r = run(["-m", gpath, "--messages", good])
checked += 1
if r.returncode != 0 or r.stdout != b"<s>[user] Hi</s>":
    fails += 1
    print("FAIL GGUF tokenizer.chat_template", r.returncode, r.stdout[:100], r.stderr[:200])
shared = os.environ.get("EDGELM_SHARED_DIR", os.path.join(repo, "..", "shared"))
gguf = os.path.join(shared, "models", "stories260K.gguf")
if os.path.exists(gguf):  # a GGUF without tokenizer.chat_template
    expect_error(["-m", gguf, "--messages", good], "GGUF without a template")
    r = run(["-m", gguf, "--chat-template", "llama2", "--messages", good])
    checked += 1
    if r.returncode != 0 or r.stdout != b"<s>[INST] Hi [/INST]":
        fails += 1
        print("FAIL GGUF + --chat-template llama2 (bos/eos from the vocabulary)", r.returncode, r.stdout[:100], r.stderr[:200])
print("template.sh: %d checks, %d failures" % (checked, fails))
sys.exit(1 if fails else 0)
PY
