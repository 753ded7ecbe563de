#!/bin/sh
# Full, reproducible build of models/edgelm-student-f32.gguf (see models/MODEL_CARD.md).
#   sh tools/train/full_run.sh OUTDIR
# Step 1 (CPU, Debian: /usr/bin/python3 + python3-sentencepiece, bible-kjv, npm) writes the token
# arrays into .traindata/. Step 2 needs a CUDA PyTorch (set PYTHON, default python3); on a machine
# without apt/npm, run step 1 elsewhere and copy .traindata/ over (that is how the shipped model was
# made: step 1 here, step 2 on one NVIDIA H200 with torch 2.11).
# Then copy OUTDIR/{edgelm-student-f32.gguf,student_greedy.tsv,results.json} and
# .traindata/{heldout.txt,tokenizer.model} into models/ (results.json -> models/train_results.json).
set -eu
out=${1:?usage: full_run.sh OUTDIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if [ "${SKIP_PREPARE:-0}" != 1 ]; then
  /usr/bin/python3 tools/train/prepare.py --out .traindata
fi
mkdir -p "$out"
{ PYTHONUNBUFFERED=1 "${PYTHON:-python3}" tools/train/train.py --data .traindata --out "$out" --seed 1234 \
    --max-stage-seconds 185; echo $? >"$out/rc"; } 2>&1 | tee "$out/log.txt"
exit "$(cat "$out/rc")"
