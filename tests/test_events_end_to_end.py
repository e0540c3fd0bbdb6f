"""Events end to end on a generated recording with known events: the Predictor, `jobs.score --windows` (events
table, Raven and Audacity exports, --threshold per class) and the demo's `/events` API all find them.

The event model (mfcc_cnn1d) is trained here from scratch on tone / chirp / clicks + background 1 s clips,
half of
them holding only part of an event (learner/data/soundscape.py);
the 10-minute, 40-event measurement is bench/events.py.
"""

from __future__ import annotations

import csv
import io
import socket
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from learner.data.soundscape import write_soundscape
from learner.report.event_metrics import match_events
from learner.score.rows import EVENT_SCHEMA
from learner.score.store import read_results
from learner.serve.events import RAVEN_COLUMNS, Event, EventRule
from learner.serve.predictor import Predictor
from tests.conftest import RAVEN_PUBLISHED, app_serving

SECONDS, N_EVENTS, OVERLAPS = 60.0, 6, 1


def _train_event_model(data: Path, out: Path, epochs: int, **kw) -> Path:
    """mfcc_cnn1d on 1 s event clips: ≈ 15–20 s of CPU to train, 0.4 s to score a minute in quarter-second
    hops
    (xresnet18: 10× more)."""
    from learner.config import AudioConfig
    from learner.train.fit import TrainArgs, train

    audio = AudioConfig(sample_rate=16000, duration=1.0, n_mels=64, hop_length=256, n_fft=512, mixup=0.0)
    return Path(
        train(
            TrainArgs(
                data=str(data),
                out=str(out),
                epochs=epochs,
                pretrained="none",
                bs=16,
                arch="mfcc_cnn1d",
                progress=False,
                **kw,
            ),
            audio,
        ).model_dir
    )


@pytest.fixture(scope="module")
def event_model(tmp_path_factory) -> Path:
    from learner.data.soundscape import make_event_dataset

    root = tmp_path_factory.mktemp("event_model")
    return _train_event_model(
        make_event_dataset(root / "clips", n_per_class=25, seed=0), root / "model", epochs=8
    )


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, list[Event]]:
    d = tmp_path_factory.mktemp("soundscape") / "site-a"
    d.mkdir()
    path = d / "night.wav"
    return path, write_soundscape(path, duration_s=SECONDS, n_events=N_EVENTS, overlaps=OVERLAPS, seed=3)


def _good_enough(found, truth) -> None:
    score = match_events(found, truth, tolerance_s=0.5)
    assert score.matched >= len(truth) - 1, (score.as_dict(), found, truth)
    assert score.n_found - score.matched <= 1, (score.as_dict(), found, truth)


def test_generated_recording_has_the_events_it_says(recording):
    import soundfile as sf

    path, truth = recording
    x, sr = sf.read(path)
    assert len(truth) == N_EVENTS and x.size == SECONDS * sr
    overlapping = [(a, b) for a, b in zip(truth, truth[1:]) if b.start_s < a.end_s]
    assert len(overlapping) == OVERLAPS and all(a.label != b.label for a, b in overlapping)
    for e in truth:  # loud inside, background outside
        inside = np.abs(x[int(e.start_s * sr) + 200 : int(e.end_s * sr) - 200]).max()
        assert inside > 0.1


def test_multilabel_event_clips_hold_zero_one_or_two_known_sounds(tmp_path):
    import soundfile as sf

    from learner.data.labels import label_sets, resolve_task
    from learner.data.manifest import load_manifest
    from learner.data.soundscape import EVENT_CLASSES, make_multilabel_event_dataset

    manifest = make_multilabel_event_dataset(tmp_path / "a", n_clips=60, seed=4)
    df = load_manifest(manifest)
    sets = label_sets(df)
    assert len(df) == 60 and resolve_task(df, "auto", "m") == "multi"
    assert {len(s) for s in sets} == {0, 1, 2} and set().union(*map(set, sets)) == set(EVENT_CLASSES)
    peak = np.array([np.abs(sf.read(f)[0]).max() for f in df["path"]])
    quiet = np.array([not s for s in sets])
    assert (peak[~quiet] > 0.1).all()  # every labelled sound is there (peaks 0.15–0.6 over noise ≤ 0.06)
    assert (peak[quiet] < 0.08).any() and (peak[quiet] > 0.1).any()  # background alone, and unlabelled edges
    again = make_multilabel_event_dataset(tmp_path / "b", n_clips=60, seed=4)
    assert again.read_text() == manifest.read_text()  # same seed, same labels


def test_predictor_finds_the_events(event_model, recording):
    path, truth = recording
    p = Predictor.from_dir(event_model)
    pred = p.predict(path, window=1.0, hop=0.25)
    assert pred.windowed and pred.events and all(e.path == str(path) for e in pred.events)
    assert "background" not in {e.label for e in pred.events}  # the rule: background is never an event
    _good_enough(pred.events, truth)
    union = p.events(np.asarray(pred.window_starts), pred.window_probs, 1.0, EventRule(boundary="union"))
    centre_err = np.abs(match_events(pred.events, truth, 1.5).onset_errors).mean()
    union_err = np.abs(match_events(union, truth, 1.5).onset_errors).mean()
    assert centre_err < union_err  # union of windows starts early by about half a window
    assert p.predict(path, window=None).events == []  # one centre crop: no timeline, no events


def test_jobs_score_writes_events_table_and_exports(event_model, recording, tmp_path, capsys):
    from jobs.score import main

    path, truth = recording
    out = tmp_path / "scores.parquet"
    raven, audacity = tmp_path / "raven", tmp_path / "audacity"
    other = tmp_path / "quiet.wav"
    import soundfile as sf

    from learner.data.soundscape import background

    sf.write(other, background(16000 * 4, np.random.default_rng(0)), 16000)  # nothing happens in it
    main(
        [
            str(path.parent),
            str(other),
            "--model",
            str(event_model),
            "--out",
            str(out),
            "--windows",
            "1,0.25",
            "--workers",
            "1",
            "--quiet",
            "--raven",
            str(raven),
            "--audacity",
            str(audacity),
        ]
    )
    assert "exported" in capsys.readouterr().out
    table = pq.read_table(out.with_name("scores.events.parquet"))
    assert table.schema.equals(EVENT_SCHEMA)
    rows = read_results(out, events=True).to_pylist()
    assert {r["path"] for r in rows} == {str(path)}
    found = [
        Event(r["path"], r["label"], r["start_s"], r["end_s"], r["max_score"], r["mean_score"]) for r in rows
    ]
    _good_enough(found, truth)
    direct = Predictor.from_dir(event_model).predict(path, window=1.0, hop=0.25).events
    assert [(e.label, e.start_s, e.end_s) for e in sorted(found, key=lambda e: (e.start_s, e.label))] == [
        (e.label, e.start_s, e.end_s) for e in direct
    ]  # the job and the Predictor agree exactly
    # one Raven table and one Audacity file per input file (the quiet one too: empty, header only)
    rv = sorted(raven.rglob("*.txt"))
    assert [p.name for p in rv] == [
        "night.wav.earshot.selection.table.txt",
        "quiet.wav.earshot.selection.table.txt",
    ]
    lines = list(csv.reader(io.StringIO(rv[0].read_text()), delimiter="\t"))
    assert tuple(lines[0]) == RAVEN_COLUMNS and lines[0][:7] == RAVEN_PUBLISHED
    assert len(lines) == len(found) + 1 and lines[1][1] == "Spectrogram 1" and lines[1][6] == "8000.0"
    assert rv[1].read_text().count("\n") == 1
    (night,) = audacity.rglob("night.wav.earshot.labels.txt")  # below the inputs' common folder, as they were
    assert night.parent.name == "site-a" and night.relative_to(audacity).parts[-3:-1] == (
        path.parent.parent.name,
        "site-a",
    )
    labels = night.read_text().splitlines()
    assert len(labels) == len(found)
    start, end, label = labels[0].split("\t")
    assert label == min(found, key=lambda e: e.start_s).label and float(end) > float(start)


def test_jobs_score_threshold_per_class_overrides(event_model, recording, tmp_path):
    from jobs.score import main

    path, _ = recording
    base = ["--model", str(event_model), "--windows", "1,0.25", "--workers", "1", "--quiet"]
    main([str(path), "--out", str(tmp_path / "a.parquet"), *base])
    main([str(path), "--out", str(tmp_path / "b.parquet"), "--threshold", "tone=1.0", *base])
    a, b = (read_results(tmp_path / f"{n}.parquet", events=True).to_pylist() for n in "ab")
    assert any(r["label"] == "tone" for r in a)
    assert [r for r in a if r["label"] != "tone"] == [r for r in b] and not any(
        r["label"] == "tone" for r in b
    )
    with pytest.raises(ValueError, match="unknown class.*'tonee'"):
        main([str(path), "--out", str(tmp_path / "c.parquet"), "--threshold", "tonee=0.5", *base])
    with pytest.raises(SystemExit):
        main([str(path), "--out", str(tmp_path / "d.parquet"), "--threshold", "tone=high", *base])
    with pytest.raises(ValueError, match="--raven needs --windows"):
        main(
            [
                str(path),
                "--out",
                str(tmp_path / "e.parquet"),
                "--model",
                str(event_model),
                "--raven",
                str(tmp_path),
            ]
        )


def test_events_table_in_csv_format(event_model, recording, tmp_path):
    from learner.score.local import ScoreOptions, score

    path, truth = recording
    out = tmp_path / "s.csv"
    score(
        [path],
        Predictor.from_dir(event_model),
        ScoreOptions(str(out), fmt="csv", window=(1.0, 0.25), workers=1, progress=False, event_min_s=1.0),
    )
    rows = list(csv.DictReader(open(next(out.with_name("s.events.csv").glob("part-*.csv")))))
    assert list(rows[0]) == ["path", "label", "start_s", "end_s", "max_score", "mean_score"]
    assert all(float(r["end_s"]) - float(r["start_s"]) >= 1.0 for r in rows)


@pytest.fixture(scope="module")
def multi_event_model(tmp_path_factory) -> Path:
    """A multi-label (sigmoid) event model: 1 s clips holding 0, 1 or 2 overlapping sounds, no background
    class."""
    from learner.data.soundscape import make_multilabel_event_dataset

    root = tmp_path_factory.mktemp("multi_event_model")
    data = make_multilabel_event_dataset(root / "clips", n_clips=240, seed=0)
    # bench/events.py's model (same clips, seed and settings)
    return _train_event_model(data, root / "model", epochs=10, pickle=False, seed=0)


def test_multilabel_model_holds_overlapping_events_in_all_three_paths(multi_event_model, recording, tmp_path):
    """Where one event hands over to another, a sigmoid model keeps both: the overlapping pair is found whole,
    and the Predictor, `jobs.score --windows` and the demo's events function give the same events."""
    from jobs.score import main
    from learner.demo.events import find_events_in

    path, truth = recording
    p = Predictor.from_dir(multi_event_model)
    assert p.task == "multi" and p.classes == ["chirp", "clicks", "tone"]  # no background class needed
    rule = EventRule(0.4, max_gap_s=0.5, min_length_s=0.5)  # bench/events.py's choice (seed 1)
    events = p.predict(path, window=1.0, hop=0.25, events=rule).events
    _good_enough(events, truth)
    ((a, b),) = [(a, b) for a, b in zip(truth, truth[1:]) if b.start_s < a.end_s]
    assert (
        match_events(events, [a, b]).matched == 2
    )  # both sides of the overlap, onsets and offsets within ±0.5 s
    out = tmp_path / "m.parquet"
    main(
        [
            str(path),
            "--model",
            str(multi_event_model),
            "--out",
            str(out),
            "--windows",
            "1,0.25",
            "--workers",
            "1",
            "--quiet",
            "--threshold",
            "0.4",
            "--event-gap",
            "0.5",
            "--event-min",
            "0.5",
        ]
    )
    rows = read_results(out, events=True).to_pylist()
    demo = find_events_in(p, str(path), threshold=0.4, max_gap_s=0.5, min_length_s=0.5, draw=False).events
    want = [(e.label, e.start_s, e.end_s) for e in events]
    assert (
        [(r["label"], r["start_s"], r["end_s"]) for r in rows]
        == want
        == [(e.label, e.start_s, e.end_s) for e in demo]
    )


# --- the demo's API
# -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events_app(event_model):
    with app_serving(event_model) as app:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        yield f"http://127.0.0.1:{port}/"
        app.demo.close()


def test_demo_api_returns_the_events(events_app, event_model, recording):
    from gradio_client import Client, handle_file

    path, truth = recording
    client = Client(events_app, verbose=False)
    table, plot, csv_file, message = client.predict(handle_file(str(path)), 0.5, api_name="/events")
    rows = list(csv.DictReader(open(csv_file)))
    found = [Event("", r["label"], float(r["start_s"]), float(r["end_s"]), 1.0, 1.0) for r in rows]
    _good_enough(found, truth)
    assert [r[0] for r in table["data"]] == [r["label"] for r in rows]
    assert f"{len(rows)} event(s)" in message
    table_hi, *_ = client.predict(handle_file(str(path)), 0.95, api_name="/events")
    assert len(table_hi["data"]) <= len(rows)  # the slider's threshold is applied
