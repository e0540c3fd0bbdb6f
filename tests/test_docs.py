"""The docs cannot rot: every shell command in README.md and docs/ is run here, or listed with the reason it
is not (tests/test_docs_names.py checks the flags, paths and modules the pages name).

Runnable commands run as written (through bash) in a workspace laid out the way the pages describe it:
`my_sounds/` (a folder per class of generated clips), `my_sounds.csv`, `clip.wav`, `clips/`, `recordings/`,
`site-a/`, `field/` (long recordings with Raven tables), and `models/my_sounds` trained and exported by the
README's own commands (training with the flags that make it a few seconds long).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```(\w*)[^\n]*\n(.*?)^\1```", re.M | re.S)
SHELL = ("bash", "sh", "shell", "console")

TRAIN = ".venv/bin/python -m jobs.train --data my_sounds --out models/my_sounds --arch aisfx"
# Run with these flags appended, and why: the command as written trains xresnet18 from ImageNet for 15 epochs.
FAST_TRAIN = "--pretrained none --epochs 1 --arch mfcc_cnn1d --no-pickle"
EVALUATE = ".venv/bin/python -m jobs.evaluate --model models/my_sounds --data my_test_sounds --out eval/"
EXPORT = ".venv/bin/python -m jobs.export --model models/my_sounds --int8"
TRAIN_CSV = ".venv/bin/python -m jobs.train --data my_sounds.csv --out models/my_sounds --group-col speaker"
TRAIN_FIELD = ".venv/bin/python -m jobs.train --data field --out models/field"  # recordings + Raven tables
RUN_WITH = {
    TRAIN: (
        FAST_TRAIN,
        "the backbone path embeds every clip with the installed weights, and its scratch fallback trains for "
        "minutes; tests/test_heads.py trains the same path (train(arch='aisfx', head='frozen')) on generated "
        "audio with a random-weight backbone",
    ),
    TRAIN_CSV: (FAST_TRAIN, "as above"),
    TRAIN_FIELD: (FAST_TRAIN, "as above; tests/test_train_from_boxes.py trains xresnet18 on boxes"),
    ".venv/bin/python -m jobs.datasets build mixtures-synth": ("--small", "the full set takes a minute"),
}

# Not run, and why: reason → the commands (as the pages show them, without comments).
NOT_RUN = {
    "builds .venv (6 GB) first; `make test` is CI itself, `make demo` serves until stopped": [
        "make demo",
        "make test",
    ],
    "serves until stopped; tests/test_app.py drives app.py": [
        ".venv/bin/earshot demo --model models/my_sounds",  # app.py; scripts/install-check.sh serves it
        ".venv/bin/python app.py --model models/my_sounds",
        ".venv/bin/python app.py --model models/my_sounds --backend onnx",
    ],
    "needs the Hub (offline here; tests/test_hub.py runs the Hub code against a local server)": [
        ".venv/bin/python app.py --model you/my-sounds",
        ".venv/bin/python app.py --model alice/earshot-esc50@v2 --host 0.0.0.0 --port 8080",
        ".venv/bin/python -m jobs.push --model models/my_sounds --repo you/my-sounds",
        "python -m jobs.push --model models/esc50 --repo alice/earshot-esc50",
        ".venv/bin/python -m jobs.score /field/recordings --model you/my-sounds --out scores.parquet",
        ".venv/bin/python -m jobs.score /data/**/*.flac manifest.csv --model user/earshot-esc50@v2"
        " --out scores.parquet --windows 5,2.5 --threshold 0.6 --resume",
        "git remote add space https://huggingface.co/spaces/USER/earshot",
        "git push space main",
    ],
    "the README's command without --arch: ImageNet weights need the network (the same job runs above)": [
        ".venv/bin/python -m jobs.train --data my_sounds --out models/my_sounds",
    ],
    "the user's recordings with the installed backbone or a trained model; tests/test_embed.py and"
    " tests/test_search.py run both jobs on generated audio (a random-weight aisfx and a trained model)": [
        "earshot embed recordings/ --model aisfx --output emb.parquet --windows 5,2.5",
        "earshot embed recordings/ --model models/birds --output emb.parquet",
        "earshot search query.wav --index emb.parquet -k 20 --out hits.csv --label owl",
        "earshot search 1234 --index emb.parquet",
    ],
    "the user's annotated recordings and model; tests/test_event_evaluation.py runs jobs.evaluate --boxes"
    " (with --model, --target-precision, --write-thresholds, and with --events) on a generated recording": [
        ".venv/bin/python -m jobs.evaluate --model models/birds --boxes annotated/ --out eval/"
        " --target-precision 0.9 --write-thresholds",
        ".venv/bin/python -m jobs.evaluate --events night.parquet --boxes annotated/ --out eval/",
    ],
    "the user's own recordings and model; the same job runs above on recordings/": [
        ".venv/bin/python -m jobs.score /data/recorders --model models/birds --out scores.parquet",
    ],
    "needs a Ray cluster; tests/test_scoring.py runs the Ray engine on one machine": [
        ".venv/bin/python -m jobs.score --engine ray --ray-address HEAD:6379 --model /shared/models/birds"
        " --input /shared/recorders --output /shared/scores.parquet --actors 8 --decoders 16 --resume",
    ],
    "downloads a dataset (ESC-50 600 MB, Speech Commands 2.4 GB), or needs the downloaded archive": [
        "python -m jobs.datasets fetch esc50",
        "python -m jobs.datasets fetch esc50 --from ~/Downloads/ESC-50-master.zip",
        "python -m jobs.train --data esc50 --arch xresnet18 --epochs 20 --cv --out runs/esc50-cv",
        "python -m jobs.train --data esc50 ...",
        "python -m jobs.train --data speech-commands --out models/sc --store /data/earshot-store"
        " --loader-workers 3",
    ],
    "trains for minutes (several archs, folds or 720 clips); tests/test_compare.py, bench/multilabel.py": [
        "python -m jobs.compare --data spoken-digits-synth --archs xresnet18,conv1d_raw,mfcc_cnn1d"
        " --epochs 10 --pretrained none --group-col group --sample-rate 16000 --n-fft 512 --hop 256"
        " --n-mels 64 --out runs/compare-digits",
        "python -m jobs.compare --data spoken-digits-synth --cv --n-folds 5 --epochs 10 --pretrained none ..."
        " --out runs/cv",
        ".venv/bin/python -m jobs.train --data mixtures-synth --out models/mixtures --pretrained none",
        ".venv/bin/python -m jobs.evaluate --model models/mixtures --data mixtures-synth",
    ],
    "run in order, in one workspace, by tests/test_review.py (each needs the one before); the demo's Review"
    " tab by tests/test_review_browser.py": [
        ".venv/bin/python -m jobs.score site-a --model models/night-sounds --out night.parquet"
        " --windows clip,0.25",
        ".venv/bin/python -m jobs.review pick night.parquet --pick uncertain -n 50 --out next.csv",
        ".venv/bin/python app.py --model models/night-sounds --review night.parquet",
        ".venv/bin/python -m jobs.review ask night.parquet -n 20 --reviewer ann",
        ".venv/bin/python -m jobs.review summary night.review.csv",
        ".venv/bin/python -m jobs.review raven night.review.csv --out night.reviewed.selections.txt",
        ".venv/bin/python -m jobs.review boxes night.review.csv --out night.boxes.csv",
        ".venv/bin/python -m jobs.review calibrate night.review.csv --precision 0.9 --plot calibration.png",
        ".venv/bin/python -m jobs.review calibrate night.review.csv --precision 0.9"
        " --model models/night-sounds --write",
        ".venv/bin/python -m jobs.review boxes night.review.csv --with my_sounds --out night.both.csv",
        ".venv/bin/python -m jobs.train --data night.both.csv --out models/night-sounds-2"
        " --pretrained models/night-sounds",
    ],
    "a system install": ["sudo apt-get install espeak-ng", "brew install espeak-ng"],
    "the lean venv: scripts/serve-venv-check.sh builds it from requirements-serve.txt and runs these in CI": [
        "python3 -m venv .venv-serve",
        ".venv-serve/bin/pip install -r requirements-serve.txt",
        ".venv-serve/bin/python -m jobs.predict clip.wav other.mp3 --model models/my_sounds",
        ".venv-serve/bin/python -m jobs.score recordings/ --model models/my_sounds --out scores.parquet",
        ".venv-serve/bin/python app.py --model models/my_sounds",
    ],
}
SKIP = {command: reason for reason, commands in NOT_RUN.items() for command in commands}
# Several GPUs, processes or machines (tests/test_distributed.py runs one machine's processes); their flags
# after `-m jobs.train` are still checked against its --help below.
LAUNCHERS = ("accelerate launch", "torchrun")


def page_commands() -> dict[str, tuple[str, list[str]]]:
    """Each shell command of the pages → (the line as written, the pages showing it).

    The key is the command's words without the comment (continuation lines joined); the line is run as is.
    """
    found: dict[str, tuple[str, list[str]]] = {}
    for page in PAGES:
        for block in FENCE.finditer(page.read_text()):
            if block.group(2) not in SHELL:
                continue
            for line in re.sub(r"\\\n\s*", " ", block.group(3)).splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    found.setdefault(" ".join(words), (line.strip(), []))[1].append(page.name)
    return found


COMMANDS = page_commands()


def _lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def _labels(out: str) -> dict[str, str]:
    """`jobs.predict` output → file name → top label."""
    return {Path(line.split("\t")[0]).name: line.split("\t")[1].split()[0] for line in _lines(out)}


def check_shipped_model(ws: Path, out: str) -> None:
    labels = _labels(out)
    words = {name: label for name, label in labels.items() if not name.startswith("sequence")}
    assert len(words) == 10
    assert sum(Path(name).stem == label for name, label in words.items()) >= 9, labels


def check_one_clip(ws: Path, out: str) -> None:
    assert set(_labels(out)) == {"clip.wav"} and _labels(out)["clip.wav"] in ("tone", "chirp")


def check_clip_and_folder(ws: Path, out: str) -> None:
    assert set(_labels(out)) == {"clip.wav", *os.listdir(ws / "clips")}


def check_scores(ws: Path, out: str) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(ws / "scores.parquet")
    assert sorted(Path(p).name for p in table["path"].to_pylist()) == sorted(os.listdir(ws / "recordings"))
    assert table["error"].null_count == table.num_rows


def check_events(ws: Path, out: str) -> None:
    import pyarrow.parquet as pq

    events = pq.read_table(ws / "night.events.parquet")
    assert set(events.column_names) >= {"path", "label", "start_s", "end_s", "max_score"}
    recordings = sorted(os.listdir(ws / "site-a"))
    assert sorted(os.listdir(ws / "raven")) == [f"{r}.earshot.selection.table.txt" for r in recordings]
    assert sorted(os.listdir(ws / "labels")) == [f"{r}.earshot.labels.txt" for r in recordings]


def check_field_tables(ws: Path, out: str) -> None:
    from learner.score.field_outputs import RAVEN_COMBINED_COLUMNS

    header = (ws / "site-a.selection.table.txt").read_text().splitlines()[0].split("\t")
    assert header == list(RAVEN_COMBINED_COLUMNS)
    assert (ws / "site-a.kaleidoscope.csv").read_text().startswith("INDIR,FOLDER,IN FILE,CHANNEL,OFFSET")
    assert (ws / "site-days.csv").read_text().startswith("site,date,label,detections")
    assert "2 file(s) with no start time" in out  # site-a's rec0.wav, rec1.wav: no time in their names


def check_export(ws: Path, out: str) -> None:
    model = ws / "models" / "my_sounds"
    assert (model / "model.onnx").stat().st_size and (model / "model.int8.onnx").stat().st_size
    assert "onnx" in json.loads((model / "config.json").read_text())


def check_evaluation(ws: Path, out: str) -> None:
    metrics = json.loads((ws / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0


def check_recipes(ws: Path, out: str) -> None:
    assert {"esc50", "fsdd", "spoken-digits-synth", "mixtures-synth"} <= set(out.split())


def check_esc50_info(ws: Path, out: str) -> None:
    assert "CC BY-NC" in out and "fold" in out


def check_digits(ws: Path, out: str) -> None:
    rows = (ws / "data" / "spoken-digits-synth-small" / "manifest.csv").read_text().splitlines()
    assert len(rows) == 61 and rows[0].startswith("path,label")


def check_mixtures(ws: Path, out: str) -> None:
    assert (ws / "data" / "mixtures-synth-small" / "manifest.csv").exists()


def check_model_folder(ws: Path, out: str) -> None:
    model = ws / "models" / "my_sounds"
    config = json.loads((model / "config.json").read_text())
    assert sorted(config["classes"]) == ["chirp", "tone"], config
    metrics = json.loads((model / "metrics.json").read_text())
    assert (model / "model.safetensors").exists() and 0.0 <= metrics["accuracy"] <= 1.0


def check_field_model(ws: Path, out: str) -> None:
    config = json.loads((ws / "models" / "field" / "config.json").read_text())
    assert set(config["classes"]) - {"background"} == {"tone", "chirp", "clicks"}, config


RUN: dict[str, Callable[[Path, str], None]] = {
    ".venv/bin/python -m jobs.predict examples/speech-words --model assets/speech-words": check_shipped_model,
    ".venv/bin/python -m jobs.predict clip.wav --model models/my_sounds": check_one_clip,
    ".venv/bin/python -m jobs.predict clip.wav clips/ --model models/my_sounds": check_clip_and_folder,
    ".venv/bin/python -m jobs.score recordings --model models/my_sounds --out scores.parquet": check_scores,
    ".venv/bin/python -m jobs.score site-a --model models/night-sounds --out night.parquet "
    "--windows clip,0.25 --event-gap 0.25 --raven raven/ --audacity labels/": check_events,
    ".venv/bin/python -m jobs.score site-a --model models/night-sounds --out site.parquet --windows clip,0.5 "
    "--start-times --raven-combined site-a.selection.table.txt --kaleidoscope site-a.kaleidoscope.csv "
    "--site-days site-days.csv": check_field_tables,
    EXPORT: check_export,
    EVALUATE: check_evaluation,
    ".venv/bin/python -m jobs.datasets list": check_recipes,
    "python -m jobs.datasets list": check_recipes,
    "python -m jobs.datasets info esc50": check_esc50_info,
    "python -m jobs.datasets build spoken-digits-synth --small": check_digits,
    ".venv/bin/python -m jobs.datasets build mixtures-synth": check_mixtures,
    TRAIN: check_model_folder,
    TRAIN_CSV: check_model_folder,
    TRAIN_FIELD: check_field_model,
}
FIXTURE_RUN = (TRAIN, TRAIN_CSV, EXPORT)  # run once, in this order, by the `trained` fixture
# A command whose run shows a bug that is not the docs' to fix (strict: the entry must go once it is fixed).
KNOWN_BUGS: dict[str, str] = {}


def env_for(ws: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.update(EARSHOT_DATA=str(ws / "data"), EARSHOT_CACHE=str(ws / "cache"), HF_HOME=str(ws / "hf"))
    env["PATH"] = f"{ws / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"  # `python`: the venv's, as in a checkout
    return env


def start(ws: Path, command: str) -> subprocess.Popen:
    """`command` as the page shows it (plus its RUN_WITH flags), through bash, in the workspace `ws`."""
    extra = RUN_WITH.get(command, ("", ""))[0]
    line = f"{command} {extra}" if extra else COMMANDS[command][0]  # flags go before the line's comment
    pipe = subprocess.PIPE
    return subprocess.Popen(
        ["bash", "-c", line], cwd=ws, env=env_for(ws), stdout=pipe, stderr=pipe, text=True
    )


def finish(proc: subprocess.Popen, command: str, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{command}\n{err[-3000:]}"
    return out


def make_workspace(root: Path) -> Path:
    """The files the pages' commands name, generated; the checkout's venv, model and examples linked."""
    import numpy as np
    import soundfile as sf

    from learner.data.sounds import make_dataset, make_sound

    root.mkdir()
    for name in ("assets", "examples"):
        (root / name).symlink_to(REPO / name)
    (root / ".venv").symlink_to(Path(sys.prefix))
    make_dataset(root / "my_sounds", n_per_class=6, classes=("tone", "chirp"))
    make_dataset(root / "my_test_sounds", n_per_class=3, classes=("tone", "chirp"), seed=1)
    clips = sorted((root / "my_sounds").glob("*/*.wav"))
    rows = [f"{p.relative_to(root)},{p.parent.name},s{i % 3}" for i, p in enumerate(clips)]
    (root / "my_sounds.csv").write_text("path,label,speaker\n" + "\n".join(rows) + "\n")
    rng = np.random.default_rng(0)
    sf.write(root / "clip.wav", make_sound("tone", 16000, 1.0, rng), 16000)
    _field_recordings(root / "field")
    for folder, n, seconds in (("clips", 2, 1.0), ("recordings", 3, 2.0), ("site-a", 2, 4.0)):
        (root / folder).mkdir()
        for i in range(n):
            halves = [make_sound(kind, 16000, seconds / 2, rng) for kind in ("tone", "chirp")]
            sf.write(root / folder / f"rec{i}.wav", np.concatenate(halves), 16000)
    return root


def _field_recordings(folder: Path) -> None:
    """`field/`: three 20 s recordings with a Raven table beside each (docs/annotations.md)."""
    import numpy as np

    from learner.data.soundscape import background, generated_sounds, write_soundscapes
    from learner.score.event_writers import EVENT_WRITERS, RAVEN_SUFFIX

    beds = [background(16000 * 4, np.random.default_rng(0))]
    table = (RAVEN_SUFFIX, EVENT_WRITERS["raven"].render)
    write_soundscapes(folder, generated_sounds(n_per_class=2), beds, 3, 20, n_events=5, table=table)


def copy_of(ws: Path, to: Path) -> Path:
    shutil.copytree(ws, to, symlinks=True)
    return to


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """The README's two training commands (folder, CSV) side by side, each in a workspace of its own; then
    its export command on the first, so the commands after it serve the model as the README leaves it."""
    root = make_workspace(tmp_path_factory.mktemp("docs") / "ws")
    spaces = {TRAIN: root, TRAIN_CSV: copy_of(root, root.with_name("ws-csv"))}
    procs = {command: start(ws, command) for command, ws in spaces.items()}
    for command, proc in procs.items():
        finish(proc, command)
    copy_of(root, root.with_name("ws-before-export"))
    finish(start(root, EXPORT), EXPORT)
    (root / "models" / "night-sounds").symlink_to("my_sounds")
    return spaces | {EXPORT: root, "before export": root.with_name("ws-before-export")}


@pytest.fixture
def workspace(trained, tmp_path) -> Path:
    """A fresh copy of the workspace with models/my_sounds, so no command sees another's output."""
    return copy_of(trained[TRAIN], tmp_path / "ws")


@pytest.mark.parametrize("command", [TRAIN, TRAIN_CSV])
def test_the_readme_training_commands_make_a_model_folder(command, trained):
    check_model_folder(trained[command], "")


def test_the_export_command_adds_onnx_files(trained):
    assert not (trained["before export"] / "models" / "my_sounds" / "model.onnx").exists()
    check_export(trained[EXPORT], "")


def test_the_csv_training_command_holds_whole_speakers_out(trained):
    """12 clips of 3 speakers (4 each): a random 20 % split would hold out 2 or 3 clips, a speaker split 4."""
    split = json.loads((trained[TRAIN_CSV] / "models" / "my_sounds" / "config.json").read_text())["split"]
    assert split["n_valid"] == 4 and split["n_train"] == 8, split


def _run_params() -> list:
    params = []
    for command in RUN:
        if command in FIXTURE_RUN or command not in COMMANDS:
            continue
        bug = KNOWN_BUGS.get(command)
        params.append(
            pytest.param(command, marks=pytest.mark.xfail(strict=True, reason=bug)) if bug else command
        )
    return params


@pytest.mark.parametrize("command", _run_params())
def test_command_runs_as_the_page_shows(command, workspace):
    out = finish(start(workspace, command), command, timeout=120)
    RUN[command](workspace, out)


def test_every_command_is_run_or_listed_with_its_reason():
    listed = set(RUN) | set(SKIP)
    unlisted = [
        f"{c}  ({', '.join(pages)})"
        for c, (_, pages) in COMMANDS.items()
        if c not in listed and not c.startswith(LAUNCHERS)
    ]
    assert not unlisted, "add each to RUN (with a check) or SKIP (with the reason) here:\n" + "\n".join(
        unlisted
    )
    stale = sorted((listed | set(RUN_WITH) | set(KNOWN_BUGS)) - set(COMMANDS))
    assert not stale, f"no page shows these any more; drop them from tests/test_docs.py: {stale}"
    assert not set(RUN) & set(SKIP) and all(SKIP.values()) and all(r for _, r in RUN_WITH.values())
