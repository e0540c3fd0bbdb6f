"""Issue 23, item 3: the review file (append-only, latest answer wins, undo, two writers at once, a torn
line), the picks (score, random, balanced, uncertain; answered windows never again), the box table and
Raven export of the answers, the Review tab's logic, and `jobs.review`. Generated audio only."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from learner.data.review import (
    COLUMNS,
    HEADER,
    Candidate,
    ReviewFileError,
    append_answer,
    read_answers,
    read_review,
    review_boxes,
    write_raven,
)
from learner.score.picks import load_candidates, pick

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def cand(i: int, label: str = "tone", score: float = 0.5, path: str = "rec.wav") -> Candidate:
    return Candidate(path, float(i), float(i) + 1.0, label, score, "uncertain", "scores.parquet")


def test_answers_append_and_the_latest_wins(tmp_path):
    f = tmp_path / "r.csv"
    append_answer(f, cand(0), "yes", reviewer="ann")
    append_answer(f, cand(1), "no")
    append_answer(f, cand(0), "no")  # changed her mind: the later answer wins
    append_answer(f, cand(2), "other", "chirp")
    append_answer(f, cand(3), "unsure")
    assert f.read_bytes().startswith(HEADER) and f.read_text().count("\n") == 6
    latest = read_review(f).set_index("start_s")
    assert latest["answer"].to_dict() == {0.0: "no", 1.0: "no", 2.0: "other", 3.0: "unsure"}
    assert latest.loc[2.0, "answered_label"] == "chirp" and latest.loc[1.0, "answered_label"] == "tone"
    assert list(read_answers(f).columns) == [*COLUMNS, "row"]


def test_undo_retracts_the_answer_before_it(tmp_path):
    f = tmp_path / "r.csv"
    append_answer(f, cand(0), "yes")
    append_answer(f, cand(0), "no")
    append_answer(f, cand(0), "undo")  # back to yes
    append_answer(f, cand(1), "yes")
    append_answer(f, cand(1), "undo")  # nothing left for window 1
    latest = read_review(f)
    assert latest[["start_s", "answer"]].values.tolist() == [[0.0, "yes"]]
    assert latest.attrs["undone"] == 2 and latest.attrs["lines"] == 5


def test_bad_answers_are_refused_with_a_reason(tmp_path):
    with pytest.raises(ValueError, match="one of yes"):
        append_answer(tmp_path / "r.csv", cand(0), "maybe")
    with pytest.raises(ValueError, match="needs the label"):
        append_answer(tmp_path / "r.csv", cand(0), "other")
    (tmp_path / "x.csv").write_text("path,label\na.wav,dog\n")
    with pytest.raises(ReviewFileError, match="x.csv: not a review file"):
        read_review(tmp_path / "x.csv")


WRITER = textwrap.dedent(
    """
    import sys
    from learner.data.review import Candidate, append_answer
    who, n = sys.argv[2], int(sys.argv[3])
    for i in range(n):
        append_answer(sys.argv[1], Candidate(f"{who}.wav", i, i + 1, "tone", 0.5, "random", "x" * 300),
                      "yes" if i % 2 else "no", reviewer=who)
    """
)


def test_two_reviewers_appending_at_once_lose_and_mangle_nothing(tmp_path):
    """Two processes append 300 long lines each at the same moment: 600 whole lines, one header."""
    f = tmp_path / "shared.review.csv"
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(f), who, "300"], env=env, cwd=REPO)
        for who in ("ann", "bob")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert f.read_text().count("path,start_s") == 1
    answers = read_answers(f)
    assert len(answers) == 600 and set(answers["reviewer"]) == {"ann", "bob"}
    for who in ("ann", "bob"):  # each writer's lines whole and in its own order
        mine = answers.loc[answers["reviewer"] == who, "start_s"].tolist()
        assert mine == [float(i) for i in range(300)]
    assert len(read_review(f)) == 600


def test_a_line_cut_short_by_a_crash_is_skipped_and_the_next_answer_kept(tmp_path, caplog):
    f = tmp_path / "r.csv"
    append_answer(f, cand(0), "yes")
    with open(f, "ab") as fh:
        fh.write(b"rec.wav,1.000,2.000,tone,0.5,ye")  # the server died here
    append_answer(f, cand(2), "no")
    latest = read_review(f)
    assert latest[["start_s", "answer"]].values.tolist() == [[0.0, "yes"], [2.0, "no"]]
    assert "line 3 skipped" in caplog.text and "r.csv" in caplog.text


def test_review_boxes_follow_the_contract(tmp_path):
    f = tmp_path / "r.csv"
    for i, a in enumerate(["yes", "no", "other", "unsure"]):
        append_answer(f, cand(i), a, "chirp" if a == "other" else None)
    boxes = review_boxes(read_review(f))
    assert list(boxes.columns) == [
        "path", "start_s", "end_s", "label", "low_hz", "high_hz", "source", "row", "negative_of", "reviewed",
    ]  # fmt: skip
    assert boxes["label"].tolist() == ["tone", "", "chirp"]
    assert boxes["negative_of"].fillna("").tolist() == ["", "tone", ""]  # NaN: not a negative
    assert boxes["row"].tolist() == [2, 3, 4] and boxes.attrs["unsure"] == 1
    assert (boxes["source"] == str(f)).all() and boxes["low_hz"].isna().all()


def test_raven_export_holds_what_was_heard_and_overwrites_nothing(tmp_path):
    f = tmp_path / "r.csv"
    append_answer(f, cand(4), "yes")
    append_answer(f, cand(1), "other", "chirp")
    append_answer(f, cand(2), "no")
    out = write_raven(read_review(f), tmp_path / "reviewed.txt", high_hz=8000)
    table = pd.read_csv(out, sep="\t")
    assert {"Selection", "Begin Time (s)", "End Time (s)", "Begin Path", "File Offset (s)"} <= set(table)
    assert table["Annotation"].tolist() == ["chirp", "tone"] and table["File Offset (s)"].tolist() == [1, 4]
    assert table["Selection"].tolist() == [1, 2] and (table["High Freq (Hz)"] == 8000).all()
    with pytest.raises(FileExistsError):
        write_raven(read_review(f), out)


def _table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "path": "rec.wav",
            "start_s": np.arange(n) * 0.5,
            "end_s": np.arange(n) * 0.5 + 1.0,
            "label": rng.choice(["tone", "chirp"], n),
            "score": rng.beta(0.5, 0.5, n),
        }
    )


def test_each_pick_does_what_it_says():
    df = _table()
    top = pick(df, "top", 10)
    assert [c.score for c in top] == sorted(df["score"], reverse=True)[:10]
    near = pick(df, "uncertain", 10, threshold={"tone": 0.3, "chirp": 0.7})
    far = np.abs(df["score"] - df["label"].map({"tone": 0.3, "chirp": 0.7}))
    assert sorted(abs(c.score - (0.3 if c.label == "tone" else 0.7)) for c in near) == pytest.approx(
        sorted(far)[:10]
    )
    balanced = pick(df, "balanced", 20, bins=5)
    bins = np.histogram([c.score for c in balanced], bins=np.linspace(df.score.min(), df.score.max(), 6))[0]
    assert bins.tolist() == [4, 4, 4, 4, 4]  # the beta(0.5, 0.5) mass sits at the ends; the pick does not
    rand = pick(df, "random", 20, seed=1)
    assert len({c.start_s for c in rand}) == 20 and rand != pick(df, "random", 20, seed=2)
    assert {c.label for c in pick(df, "top", 30, labels=["chirp"])} == {"chirp"}
    assert all(c.pick == "balanced" for c in balanced)


def test_answered_windows_are_never_picked_again(tmp_path):
    df = _table()
    first = pick(df, "uncertain", 30)
    f = tmp_path / "r.csv"
    for c in first:
        append_answer(f, c, "yes")
    done = read_review(f)[["path", "start_s", "end_s", "label"]].itertuples(index=False, name=None)
    second = pick(df, "uncertain", 30, answered=list(done))
    assert not {c.key for c in first} & {c.key for c in second} and len(second) == 30


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A 6 s generated recording scored in 1 s windows by an untrained model (jobs.score)."""
    from jobs.score import main as score_main
    from learner.data.soundscape import make_soundscape
    from tests.conftest import save_untrained

    root = tmp_path_factory.mktemp("review")
    x, _ = make_soundscape(20.0, 2, overlaps=0, seed=1)
    sf.write(root / "rec.wav", x, SR)
    model = save_untrained(root / "model", ["chirp", "clicks", "tone"])
    out = root / "scores.parquet"
    score_main([str(root / "rec.wav"), "--model", str(model), "--out", str(out), "--windows", "1,0.5",
                "--quiet", "--workers", "1"])  # fmt: skip
    return root, model, out


def test_candidates_come_from_a_scoring_run_its_events_or_search_hits(scored, tmp_path):
    root, _, out = scored
    windows = load_candidates(out)
    assert len(windows) >= 38 and set(windows.columns) == {"path", "start_s", "end_s", "label", "score"}
    assert windows.attrs["source_run"] == str(out)
    events = load_candidates(out, "events")
    assert list(events.columns) == ["path", "start_s", "end_s", "label", "score"]
    hits = tmp_path / "hits.csv"
    hits.write_text("path,label,start_s,end_s,similarity,row\nrec.wav,owl,1.0,2.0,0.93,7\n")
    assert load_candidates(hits).iloc[0].to_dict() == {
        "path": "rec.wav", "start_s": 1.0, "end_s": 2.0, "label": "owl", "score": 0.93,
    }  # fmt: skip
    hits.write_text("path,label,start_s,end_s,similarity,row\nrec.wav,,1.0,2.0,0.93,7\n")
    with pytest.raises(ValueError, match="hits.csv: no labels to review"):
        load_candidates(hits)
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        load_candidates(tmp_path / "nope.parquet")


def test_the_review_tab_logic_answers_undoes_and_resumes(scored, tmp_path):
    from learner.config import AudioConfig
    from learner.demo.review import Reviewer
    from learner.folder import read_config

    root, model, out = scored
    cfg = AudioConfig.from_dict(read_config(model)["audio"])
    rv = Reviewer(out, tmp_path / "r.csv", cfg, ["chirp", "clicks", "tone"])
    s = rv.start("uncertain", 5, 0.5)
    shown = [s.current]
    s = rv.answer(s, "yes", None, "ann")
    shown.append(s.current)
    s = rv.answer(s, "other", "tone", "ann")
    s = rv.undo(s, "ann")  # back to the second window
    assert s.current == shown[1] and s.i == 1
    s = rv.answer(s, "no", None, "ann")
    latest = read_review(tmp_path / "r.csv")
    assert latest["answer"].tolist() == ["yes", "no"] and (latest["reviewer"] == "ann").all()
    samples, begin = rv.clip(s.current)
    assert begin == max(0.0, s.current.start_s - 1.0)
    assert samples.size == pytest.approx((s.current.end_s + 1.0 - begin) * cfg.sample_rate, abs=2)
    assert rv.figure(s.current, samples, begin).axes
    again = rv.start("uncertain", 5, 0.5)  # a new session (a restarted server) skips what was answered
    assert not {Candidate(**c).key for c in again.candidates} & {c.key for c in shown}


def _job(*argv: str, stdin: str | None = None, monkeypatch=None) -> None:
    from jobs.review import main

    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main(list(argv)) == 0


def test_the_review_job_picks_asks_exports_and_calibrates(scored, tmp_path, monkeypatch, capsys):
    root, model, out = scored
    f = tmp_path / "r.csv"
    _job("pick", str(out), "-n", "4", "--review-file", str(f), "--out", str(tmp_path / "q.csv"))
    assert len(pd.read_csv(tmp_path / "q.csv")) == 4
    _job("ask", str(out), "-n", "4", "--review-file", str(f), "--reviewer", "bob",
         stdin="y\nmaybe\nn\nz\no tone\nq\n", monkeypatch=monkeypatch)  # fmt: skip
    assert read_review(f)["answer"].tolist() == ["yes", "other"]
    _job("boxes", str(f), "--out", str(tmp_path / "boxes.csv"))
    assert pd.read_csv(tmp_path / "boxes.csv")["label"].tolist()[1] == "tone"
    _job("raven", str(f), "--out", str(tmp_path / "r.txt"))
    _job("summary", str(f))
    assert "2 window(s) answered, 1 undone" in capsys.readouterr().out
    _job("pick", str(out), "-n", "3", "--pick", "top", "--model", str(model), "--review-file", str(f))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("path\tstart_s") and len(lines) == 4


def test_review_boxes_of_a_file_read_by_pandas_apply_undo_and_latest(tmp_path):
    """What learner.data.annotations hands over: the file's lines as pd.read_csv reads them."""
    f = tmp_path / "r.csv"
    append_answer(f, cand(0), "yes")
    append_answer(f, cand(0), "no")
    append_answer(f, cand(1), "other", "chirp")
    append_answer(f, cand(1), "undo")
    append_answer(f, cand(2), "yes")
    raw = review_boxes(pd.read_csv(f))
    assert raw[["start_s", "label", "row"]].values.tolist() == [[0.0, "", 3], [2.0, "tone", 6]]
    assert raw.drop(columns="source").equals(review_boxes(read_review(f)).drop(columns="source"))


def test_the_review_page_runs_as_written(tmp_path):
    """docs/review.md's commands, in order, in one workspace (each needs the one before); the demo's is
    driven by tests/test_review_browser.py. The terminal review gets its answers on standard input."""
    from tests.conftest import save_untrained
    from tests.test_docs import COMMANDS, env_for, make_workspace

    ws = make_workspace(tmp_path / "ws")
    save_untrained(ws / "models" / "night-sounds", ["chirp", "tone"], arch="mfcc_cnn1d")
    page = [line for command, (line, pages) in COMMANDS.items() if "review.md" in pages]
    assert sum("jobs.review" in line for line in page) >= 8 and any("jobs.train" in x for x in page), page
    for line in page:
        if line.startswith(".venv/bin/python app.py"):
            continue
        answers = "y\nn\no tone\nu\n" * 5 if " ask " in line else ""
        if "jobs.train" in line:  # as tests/test_docs.py runs the README's: 1 epoch of a small network
            line = f"{line} --arch mfcc_cnn1d --epochs 1 --no-pickle --quiet"
        done = subprocess.run(["bash", "-c", line], cwd=ws, env=env_for(ws), input=answers, text=True,
                              capture_output=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
    assert len(pd.read_csv(ws / "next.csv")) == 26  # every window of the two 4 s recordings
    assert read_review(ws / "night.review.csv")["reviewer"].eq("ann").sum() == 20
    assert (ws / "calibration.png").exists() and (ws / "night.reviewed.selections.txt").exists()
    assert len(pd.read_csv(ws / "night.boxes.csv")) == 15  # 20 answers, 5 unsure
    assert (ws / "models" / "night-sounds-2" / "model.safetensors").exists()


def _truth_of(starts: np.ndarray, truth: list) -> list[str]:
    """The class covering at least half of each 1 s window, else ""."""
    out = []
    for s in starts:
        share = {e.label: min(s + 1, e.end_s) - max(s, e.start_s) for e in truth}
        best = max(share, key=share.get)
        out.append(best if share[best] >= 0.5 else "")
    return out


def test_training_on_a_review_file_and_the_original_data(tmp_path):
    """`jobs.train --data REVIEW --pretrained MODEL`: the answers (two recordings, answered with the truth)
    become the training windows, the split by recording; `jobs.review boxes --with` adds the original
    clips. 1 epoch of a small network: the point is the data path, not accuracy."""
    from jobs.train import main as train_main
    from learner.data.soundscape import make_event_dataset, write_soundscape
    from learner.folder import read_config

    f, heard_labels = tmp_path / "night.review.csv", set()
    for seed in (3, 4):
        rec = tmp_path / f"rec{seed}.wav"
        truth = write_soundscape(rec, duration_s=40.0, n_events=4, overlaps=0, seed=seed)
        starts = np.arange(0, 39, 0.5)
        for s, heard in zip(starts, _truth_of(starts, truth)):
            c = Candidate(str(rec), float(s), float(s) + 1, heard or "tone", 0.5, "random", "night.parquet")
            append_answer(f, c, "yes" if heard else "no")
            heard_labels |= {heard} - {""}
    fast = ["--arch", "mfcc_cnn1d", "--epochs", "1", "--no-pickle", "--quiet", "--sample-rate", "16000"]
    assert train_main(["--data", str(f), "--out", str(tmp_path / "m1"), "--pretrained", "none", *fast]) == 0
    config = read_config(tmp_path / "m1")
    assert set(config["classes"]) == heard_labels | {"background"}  # no → background windows
    original = make_event_dataset(tmp_path / "clips", n_per_class=3)
    both = tmp_path / "both.csv"
    _job("boxes", str(f), "--with", str(original), "--out", str(both))
    rows = pd.read_csv(both)
    assert (rows["pick"] == "original").sum() == 12 and len(rows) == 12 + len(read_review(f))
    again = ["--data", str(both), "--out", str(tmp_path / "m2"), "--pretrained", str(tmp_path / "m1")]
    assert train_main([*again, *fast]) == 0
    assert set(read_config(tmp_path / "m2")["classes"]) == {"background", "chirp", "clicks", "tone"}
