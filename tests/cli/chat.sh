#!/usr/bin/env bash
# tests/cli/chat.sh EDGELM_CMD... - `edgelm chat` on stories260K.gguf with the ChatML built-in:
#   - turn 2 prefills only the new turn: the tokens of turn 1 (its prompt and its reply) are reused from
#     the KV cache, and turn 2's prompt is exactly the conversation as `edgelm template` renders it
#     (that renderer is checked against jinja2 by template.sh) tokenized by `edgelm tokenize --no-special`;
#   - /reset starts over (the same first turn gives the same greedy reply), /exit ends (later lines are
#     not answered);
#   - a model without a template: --system is an error; an unknown --chat-template NAME is an error.
# Reference data: ${EDGELM_SHARED_DIR:-<repo>/../shared}/models/stories260K.gguf. Missing: skipped (exit 0),
# or a failure when EDGELM_REQUIRE_SHARED=1. Needs python3 (skipped without it).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 EDGELM_CMD..."; exit 2; }
shared=${EDGELM_SHARED_DIR:-$repo/../shared}
model=$shared/models/stories260K.gguf
if [[ ! -f $model ]]; then
  if [[ "${EDGELM_REQUIRE_SHARED:-0}" == 1 ]]; then echo "chat.sh: FAIL: missing $model"; exit 1; fi
  echo "chat.sh: $model not found, skipped (EDGELM_REQUIRE_SHARED=1 makes this a failure)"; exit 0
fi
command -v python3 >/dev/null || { echo "chat.sh: no python3, skipped"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$model" "$tmp" "$@" <<'PY'
import json, os, re, subprocess, sys
model, tmp, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
fails = 0
def check(ok, what):
    global fails
    if not ok:
        fails += 1
        print("chat.sh: FAIL:", what)
def chat(stdin, extra):
    return subprocess.run(cmd + ["chat", "-m", model, "--temp", "0", "-n", "24"] + extra, input=stdin.encode(), capture_output=True)
def turns(stderr):
    return [tuple(map(int, m)) for m in re.findall(rb"\[turn \d+: prompt (\d+) tokens, (\d+) reused, (\d+) prefilled, (\d+) generated", stderr)]

system = "You are a storyteller."
opts = ["--chat-template", "chatml", "--system", system]
a = chat("Hello\n", opts)
check(a.returncode == 0, "chat exit status %d: %s" % (a.returncode, a.stderr.decode(errors="replace")))
reply1 = a.stdout.decode()[:-1]
ta = turns(a.stderr)
check(len(ta) == 1 and ta[0][1] == 0, "one turn, nothing reused: %r" % (ta,))

b = chat("Hello\nWhat is your name?\n/reset\nHello\n/exit\nnever answered\n", opts)
check(b.returncode == 0, "chat exit status %d" % b.returncode)
tb = turns(b.stderr)
check(len(tb) == 3, "three turns answered (/exit ends): %r" % (tb,))
if len(tb) == 3 and len(ta) == 1:
    p1, r1, f1, g1 = tb[0]
    p2, r2, f2, g2 = tb[1]
    check(tb[0] == ta[0], "the first turn is the same in both runs")
    check(r2 == p1 + g1, "turn 2 reuses turn 1's prompt and reply from the KV cache: reused %d, turn 1 %d + %d" % (r2, p1, g1))
    check(f2 == p2 - r2 and f2 < p2 / 2, "turn 2 prefills only the new tokens: %d of %d" % (f2, p2))
    # turn 2's prompt = the conversation rendered by `edgelm template`, tokenized with no tokens added
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": reply1}, {"role": "user", "content": "What is your name?"}]
    mf = os.path.join(tmp, "m.json")
    json.dump(msgs, open(mf, "w", encoding="utf-8"))
    t = subprocess.run(cmd + ["template", "--chat-template", "chatml", "--messages", mf], capture_output=True)
    check(t.returncode == 0, "template: %s" % t.stderr.decode(errors="replace"))
    k = subprocess.run(cmd + ["tokenize", "-m", model, "--no-special", "-p", t.stdout.decode()], capture_output=True)
    check(k.returncode == 0, "tokenize: %s" % k.stderr.decode(errors="replace"))
    check(len(k.stdout.split()) == p2, "turn 2's prompt is the rendered conversation: %d tokens, tokenize says %d" % (p2, len(k.stdout.split())))
    # after /reset the same first turn: same prompt, same greedy reply
    check(tb[2][0] == p1 and tb[2][3] == g1, "after /reset turn 1 again: %r vs %r" % (tb[2], tb[0]))
    out = b.stdout.decode()
    check(out.startswith(reply1 + "\n") and out.endswith("\n" + reply1 + "\n"), "the reply after /reset equals the first reply")
    print("chat.sh: turn 2 prefilled %d of %d prompt tokens (%d reused from the KV cache)" % (f2, p2, r2))

# errors
e = subprocess.run(cmd + ["chat", "-m", model, "--system", "x"], input=b"hi\n", capture_output=True)
check(e.returncode == 1 and b"chat template" in e.stderr, "--system without a template is an error: %r" % e.stderr)
e = subprocess.run(cmd + ["chat", "-m", model, "--chat-template", "no-such-template"], input=b"hi\n", capture_output=True)
check(e.returncode == 1 and b"error" in e.stderr, "unknown --chat-template: %r" % e.stderr)
# a base model without a template continues the text, reusing the cache too
c = chat("Once upon a time\nThe cat\n", [])
tc = turns(c.stderr)
check(c.returncode == 0 and len(tc) == 2 and tc[1][1] == tc[0][0] + tc[0][3], "raw continuation reuses the cache: %r" % (tc,))
if fails:
    sys.exit(1)
print("chat.sh: all checks passed")
PY
