#!/usr/bin/env bash
# Part of `make test`: earshot installs (`pip install .` and `pip install -e .`) and its `earshot` command works
# from outside the checkout: --help, a tiny `earshot train` on generated audio, `earshot score`, `earshot predict`,
# `import earshot`, `earshot demo` serving on 127.0.0.1, and the fastai model.pkl loads from the installed package
# (the pickle names learner's module paths).
# Cheap on purpose: the fresh venvs see the already-built .venv's packages through a .pth file (no second 6 GB
# install) and earshot itself is installed with --no-deps; the build is pip's ordinary isolated PEP 517 build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-python3}
DEPS=$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1 PYTHONPATH=

# a copy of the tracked (and new, not ignored) files: pip builds in the source folder, the checkout stays clean
mkdir "$WORK/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' \
   | tar --null -T - -cf -) | tar -xf - -C "$WORK/src"

venv() {  # a fresh venv whose packages come from .venv (read-only)
    "$PY" -m venv "$1"
    local site; site=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$DEPS" > "$site/zz-earshot-deps.pth"
}

echo "install-check: pip install . (fresh venv, --no-deps)"
venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --no-deps "$WORK/src"
rm -rf "$WORK/src/build" "$WORK/src"/*.egg-info
cd "$WORK"  # outside the checkout from here on
E="$WORK/venv/bin/earshot"
"$E" --help | grep "score" > /dev/null
"$E" train --help | grep -- "--pretrained" > /dev/null
"$E" datasets list | grep "spoken-digits-synth" > /dev/null  # recipes ship as package data
"$WORK/venv/bin/python" - <<'PY'
import pathlib, numpy as np, soundfile as sf
rng, sr = np.random.default_rng(0), 16000
t = np.arange(sr) / sr
for label in ("tone", "noise"):
    folder = pathlib.Path("data") / label
    folder.mkdir(parents=True)
    for i in range(10):
        x = 0.5 * np.sin(2 * np.pi * rng.uniform(300, 900) * t) if label == "tone" else rng.normal(0, 0.3, sr)
        sf.write(folder / f"{i}.wav", x.astype(np.float32), sr)
PY
"$E" train --data data --out model --pretrained none --epochs 1 --bs 8 --sample-rate 16000 --duration 1 --n-mels 32 \
    --n-fft 512 --hop 256 --mixup 0 --quiet > train.log
grep -q "accuracy" train.log && test -f model/model.safetensors && test -f model/model.pkl
"$E" score --model model --input data --output scores.parquet --workers 1 --quiet | grep "scored 20, failed 0" > /dev/null
"$E" predict data/tone/0.wav --model model | grep "data/tone/0.wav" > /dev/null
"$WORK/venv/bin/python" -m jobs.predict data/noise/0.wav --model model > /dev/null
"$WORK/venv/bin/python" -m jobs.train --help | grep -q "^usage: python -m jobs.train"  # the README's form
"$E" train --help | grep -q "^usage: earshot train"
"$WORK/venv/bin/python" -c 'import earshot; assert earshot.Predictor.from_dir("model").predict("data/tone/2.wav").labels'
"$E" demo --help | grep -q "^usage: earshot demo"
# the demo from the installed package (its own copy of app.py), answering on 127.0.0.1
PORT=$("$WORK/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$E" demo --model model --port "$PORT" --short-workers 0 > demo.log 2>&1 &
DEMO=$!
for _ in $(seq 120); do
    "$WORK/venv/bin/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/config', timeout=2)" \
        2> /dev/null && break
    kill -0 "$DEMO" 2> /dev/null || { cat demo.log; exit 1; }
    sleep 1
done
"$WORK/venv/bin/python" -c "import urllib.request as u; assert b'classify' in u.urlopen('http://127.0.0.1:$PORT/config').read()"
kill "$DEMO"; wait "$DEMO" 2> /dev/null || true
"$WORK/venv/bin/python" - <<PY
import warnings
warnings.simplefilter("ignore")
import learner
assert learner.__file__.startswith("$WORK/venv/"), learner.__file__
from fastai.learner import load_learner
learn = load_learner("model/model.pkl", cpu=True)
assert type(learn.model).__module__ == "learner.model.xresnet" and list(learn.dls.vocab) == ["noise", "tone"]
from learner import Predictor
assert Predictor.from_dir("model", backend="pickle", allow_pickle=True).predict("data/tone/1.wav").labels
PY

echo "install-check: pip install -e . (fresh venv, --no-deps)"
venv "$WORK/venv-e"
"$WORK/venv-e/bin/pip" install -q --no-deps -e "$WORK/src"
"$WORK/venv-e/bin/earshot" datasets list | grep "esc50" > /dev/null
"$WORK/venv-e/bin/earshot" predict data/tone/0.wav --model model | grep "data/tone/0.wav" > /dev/null
test "$("$WORK/venv-e/bin/python" -c 'import learner; print(learner.__file__)')" = "$WORK/src/learner/__init__.py"
echo "install-check: ok"
