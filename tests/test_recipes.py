"""Dataset recipes against fake local "downloads" laid out like the real archives, and a local HTTP server.

No network: every tree is generated here (tiny WAVs), and downloads hit 127.0.0.1 only.
"""

from __future__ import annotations

import csv
import hashlib
import http.server
import os
import subprocess
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from learner.data import recipes
from learner.data.recipes import (
    ChecksumMismatchError,
    DatasetDownloadError,
    DatasetError,
    DatasetNotFetchedError,
    UnverifiedDownloadWarning,
)
from tests.conftest import run_job

ROOT = Path(__file__).resolve().parent.parent


def _wav(path: Path, sr: int = 8000, seconds: float = 0.05) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def fake_esc50(base: Path) -> Path:
    """ESC-50-master/{meta/esc50.csv, audio/*.wav}: 3 classes × 5 folds × 2 takes (dog, rain are ESC-10)."""
    root, rows = base / "ESC-50-master", []
    for target, (cat, esc10) in enumerate([("dog", True), ("rain", True), ("chirping_birds", False)]):
        for fold in range(1, 6):
            for take in "AB":
                name = f"{fold}-{100 + target * 10 + fold}-{take}-{target}.wav"
                _wav(root / "audio" / name)
                rows.append([name, fold, target, cat, esc10, f"{100 + target * 10 + fold}.ogg", take])
    _write_csv(
        root / "meta" / "esc50.csv",
        ["filename", "fold", "target", "category", "esc10", "src_file", "take"],
        rows,
    )
    return base


def fake_fsdd(base: Path) -> Path:
    for d in range(10):
        for spk in ("jackson", "theo"):
            for i in range(7):
                _wav(base / "free-spoken-digit-dataset-1.0.9" / "recordings" / f"{d}_{spk}_{i}.wav")
    return base


FSDK_LABELS = ["Bark", "Cough", "Knock", "Laughter", "Trumpet", "Acoustic_guitar", "Hi-hat"]


def fake_fsdk(base: Path, audio_train: str = "FSDKaggle2018.audio_train") -> Path:
    train, test = [], []
    for i, label in enumerate(FSDK_LABELS):
        for k in range(3):
            name = f"{i:02d}{k}aa.wav"
            _wav(base / audio_train / name)
            train.append([name, label, k % 2, 1000 + i * 10 + k, "Creative Commons 0"])
        name = f"{i:02d}bb.wav"
        _wav(base / "FSDKaggle2018.audio_test" / name)
        test.append([name, label, "Public", 2000 + i, "Attribution"])
    meta = base / "FSDKaggle2018.meta"
    _write_csv(
        meta / "train_post_competition.csv",
        ["fname", "label", "manually_verified", "freesound_id", "license"],
        train,
    )
    _write_csv(
        meta / "test_post_competition_scoring_clips.csv",
        ["fname", "label", "usage", "freesound_id", "license"],
        test,
    )
    return base


def fake_speech_commands(base: Path) -> Path:
    """Word folders + _background_noise_ + the two list files, with no top-level folder (like the tarball)."""
    for word in ("yes", "no", "up"):
        for spk in ("0a7c2a8d", "1b4c9b89", "c50f55b8", "fe1916ba"):
            for n in range(2):
                _wav(base / word / f"{spk}_nohash_{n}.wav", sr=16000)
    _wav(base / "_background_noise_" / "white_noise.wav", sr=16000)
    (base / "validation_list.txt").write_text(
        "".join(f"{w}/c50f55b8_nohash_{n}.wav\n" for w in ("yes", "no", "up") for n in range(2))
    )
    (base / "testing_list.txt").write_text(
        "".join(f"{w}/fe1916ba_nohash_{n}.wav\n" for w in ("yes", "no", "up") for n in range(2))
    )
    return base


def _read(manifest: Path) -> pd.DataFrame:
    df = pd.read_csv(manifest, dtype={"path": str, "label": str, "group": str})
    for p in df["path"]:  # relative paths resolve against the CSV's folder
        assert (Path(p) if os.path.isabs(p) else manifest.parent / p).is_file(), p
    return df


def _zip(src: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(src.rglob("*")):
            z.write(f, f.relative_to(src))
    return archive


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the recipe files themselves ---------------------------------------------------------------------------


def test_recipes_are_complete_data():
    rs = recipes.list_recipes()
    names = {r.name for r in rs}
    assert names == {
        "esc50",
        "esc10",
        "fsdd",
        "fsdkaggle2018",
        "fsdkaggle2019",
        "mixtures-synth",
        "speech-commands",
        "spoken-digits-synth",
    }
    assert not (ROOT / "datasets" / "__init__.py").exists()  # would shadow Hugging Face `datasets`
    for r in rs:
        assert (
            r.info.get("license") and r.info.get("citation") and r.info.get("size") and r.info.get("splits")
        ), r.name
        if r.kind == "download":
            assert r.builder in recipes.BUILDERS and r.marker, r.name
            for d in r.downloads:
                assert d.urls and all(u.startswith(("http://", "https://")) for u in d.urls)
                assert len(d.sha256) in (0, 64) and len(d.md5) in (0, 32)
    assert recipes.get_recipe("ESC-50").name == "esc50"
    assert recipes.get_recipe("Speech_Commands").name == "speech-commands"
    with pytest.raises(recipes.RecipeError, match="esc50"):
        recipes.get_recipe("esc-51")


# --- manifests from fake trees
# -------------------------------------------------------------------------------


def test_esc50_folds_groups_from_extracted_dir(tmp_path):
    src = fake_esc50(tmp_path / "dl")
    manifest = recipes.fetch("esc50", tmp_path / "out", source=src)
    df = _read(manifest)
    assert list(df.columns) == ["path", "label", "fold", "group"]
    assert len(df) == 30 and sorted(df["fold"].unique()) == [1, 2, 3, 4, 5]
    assert set(df["label"]) == {"dog", "rain", "chirping_birds"}
    assert all(os.path.isabs(p) for p in df["path"])  # data used in place, outside the manifest's folder
    assert df.groupby("group")["fold"].nunique().max() == 1  # one source recording never spans two folds


def test_esc10_is_the_flagged_subset_from_a_zip(tmp_path):
    archive = _zip(fake_esc50(tmp_path / "dl"), tmp_path / "ESC-50-master.zip")
    with pytest.warns(UnverifiedDownloadWarning, match="no published checksum"):
        manifest = recipes.fetch("esc10", tmp_path / "out", source=archive)
    df = _read(manifest)
    assert set(df["label"]) == {"dog", "rain"} and len(df) == 20
    assert sorted(df["fold"].unique()) == [1, 2, 3, 4, 5]
    assert not any(os.path.isabs(p) for p in df["path"])  # extracted under `to`: relative paths
    assert df["path"].iloc[0].startswith("ESC-50-master/audio/")


def test_fsdd_word_labels_speaker_groups_official_split(tmp_path):
    df = _read(recipes.fetch("fsdd", tmp_path / "out", source=fake_fsdd(tmp_path / "dl")))
    assert list(df.columns) == ["path", "label", "split", "group"]
    assert sorted(df["label"].unique()) == sorted(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    assert set(df["group"]) == {"jackson", "theo"}
    idx = df["path"].str.extract(r"_(\d+)\.wav$")[0].astype(int)
    assert (df["split"] == np.where(idx < 5, "test", "train")).all()
    assert df.loc[df["path"].str.contains("/7_theo_3.wav"), "label"].item() == "seven"


def test_fsdkaggle2018_class_subset_and_train_test(tmp_path):
    src = fake_fsdk(tmp_path / "dl")
    subset = ["Bark", "Cough", "Knock", "Laughter", "Trumpet"]
    df = _read(recipes.fetch("fsdkaggle2018", tmp_path / "out", source=src, classes=subset))
    assert list(df.columns) == ["path", "label", "split"]
    assert sorted(df["label"].unique()) == sorted(subset)
    assert df["split"].value_counts().to_dict() == {"train": 15, "test": 5}
    full = _read(recipes.fetch("fsdkaggle2018", tmp_path / "all", source=src))
    assert full["label"].nunique() == len(FSDK_LABELS)
    with pytest.raises(DatasetError, match="no class Barking.*classes: Acoustic_guitar"):
        recipes.fetch("fsdkaggle2018", tmp_path / "bad", source=src, classes=["Barking"])


def test_fsdkaggle2018_short_audio_folder_names_and_missing_files(tmp_path):
    src = fake_fsdk(tmp_path / "dl", audio_train="audio_train")
    next((src / "audio_train").glob("*.wav")).unlink()
    with pytest.warns(UserWarning, match="1 listed files are missing"):
        df = _read(recipes.fetch("fsdkaggle2018", tmp_path / "out", source=src))
    assert (df["split"] == "train").sum() == 3 * len(FSDK_LABELS) - 1


def test_fsdkaggle2018_from_a_folder_of_the_three_zips(tmp_path):
    src = fake_fsdk(tmp_path / "tree")
    (tmp_path / "zips").mkdir()
    for part in ("meta", "audio_train", "audio_test"):
        with zipfile.ZipFile(tmp_path / "zips" / f"FSDKaggle2018.{part}.zip", "w") as z:
            for f in sorted((src / f"FSDKaggle2018.{part}").iterdir()):
                z.write(f, f.relative_to(src))
    (tmp_path / "zips" / "notes.txt").write_text("not an archive")
    with pytest.warns(UnverifiedDownloadWarning):
        df = _read(recipes.fetch("fsdkaggle2018", tmp_path / "out", source=tmp_path / "zips"))
    assert len(df) == 4 * len(FSDK_LABELS) and not any(os.path.isabs(p) for p in df["path"])
    assert {f".extracted-FSDKaggle2018.{p}.zip" for p in ("meta", "audio_train", "audio_test")} <= {
        f.name for f in (tmp_path / "out").iterdir()
    }  # a later plain fetch will not download them
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match="not a zip or tar archive|cannot extract"):
        recipes.extract(tmp_path / "broken.zip", tmp_path / "x")


FSDK19_PARTS = ("meta", "audio_train_curated", "audio_test")


def fake_fsdk2019_zips(base: Path) -> Path:
    """The three zips of Zenodo record 3612637 as published (FSDKaggle2019.doc/README.md), each holding its
    top-level folder: FSDKaggle2019.meta/ with the post-competition CSVs (`fname,labels,...`, several labels
    comma-separated inside quotes) and vocabulary.csv, and the curated-train and test audio folders. The
    curated
    CSV lists two of the README's broken clips; the noisy CSV lists clips that are not downloaded."""
    tree, zips = base / "tree", base / "zips"
    meta = tree / "FSDKaggle2019.meta"
    meta.mkdir(parents=True)
    zips.mkdir()
    (meta / "train_curated_post_competition.csv").write_text(
        "fname,labels,freesound_id,license\n"
        "0006ae4e.wav,Bark,72174,CC0\n"
        '0019ef41.wav,"Walk_and_footsteps,Slam",344813,CC-BY\n'
        '001ec0ad.wav,"Female_singing,Male_singing,Bark",48375,CC-BY-NC\n'
        "1d44b0bd.wav,Finger_snapping,1234,CC0\n"  # the README: holds no signal
        "f76181c4.wav,Knock,5678,CC-BY\n"
    )  # the README: mislabelled
    (meta / "train_noisy_post_competition.csv").write_text(
        "fname,labels,flickr_video_URL,license\n00097e21.wav,Bathtub_(filling_or_washing),http://x/1,CC-BY\n"
    )
    (meta / "test_post_competition.csv").write_text(
        "fname,labels,usage,freesound_id,license\n"
        '4260ebea.wav,"Chewing_and_mastication,Slam",Public,9876,CC0\n'
        "426eb1e0.wav,Knock,Private,5432,CC-BY\n"
    )
    (meta / "vocabulary.csv").write_text(
        "0,Accelerating_and_revving_and_vroom,/m/07q2z82\n1,Accordion,/m/0mkg\n"
    )
    for name in ("0006ae4e", "0019ef41", "001ec0ad", "1d44b0bd", "f76181c4"):
        _wav(tree / "FSDKaggle2019.audio_train_curated" / f"{name}.wav")
    for name in ("4260ebea", "426eb1e0"):
        _wav(tree / "FSDKaggle2019.audio_test" / f"{name}.wav")
    for part in FSDK19_PARTS:
        with zipfile.ZipFile(zips / f"FSDKaggle2019.{part}.zip", "w") as z:
            for f in sorted((tree / f"FSDKaggle2019.{part}").iterdir()):
                z.write(f, f.relative_to(tree))
    return zips


def _fsdk2019_recipe_at(tmp_path: Path, url: str):
    """datasets/fsdkaggle2019.toml with its Zenodo URLs pointing at `url` (a local server, or nothing)."""
    text = (ROOT / "datasets" / "fsdkaggle2019.toml").read_text()
    assert text.count("https://zenodo.org/records/3612637/files/") == 3
    (tmp_path / "fsdkaggle2019.toml").write_text(
        text.replace("https://zenodo.org/records/3612637/files", url)
    )
    return recipes.load_recipe(tmp_path / "fsdkaggle2019.toml")


def test_fsdkaggle2019_published_layout_downloads_to_a_multilabel_manifest(server, tmp_path):
    from learner.data.labels import resolve_task
    from learner.data.manifest import load_manifest

    real = recipes.get_recipe("fsdkaggle2019")
    assert [d.filename for d in real.downloads] == [f"FSDKaggle2019.{p}.zip" for p in FSDK19_PARTS]
    assert all(
        d.urls == (f"https://zenodo.org/records/3612637/files/{d.filename}?download=1",)
        for d in real.downloads
    )
    zips = fake_fsdk2019_zips(tmp_path / "dl")
    for part in FSDK19_PARTS:
        server.files[f"/FSDKaggle2019.{part}.zip?download=1"] = (
            zips / f"FSDKaggle2019.{part}.zip"
        ).read_bytes()
    recipe = _fsdk2019_recipe_at(tmp_path, server.url)
    with pytest.warns(UserWarning) as caught:
        manifest = recipes.fetch(recipe, tmp_path / "data", progress=False)
    said = [str(w.message) for w in caught]
    assert (
        sum("no published checksum" in m for m in said) == 3
    )  # md5s not in the recipe: skipped, never silently
    assert any("left out 2 clip(s)" in m and "1d44b0bd.wav, f76181c4.wav" in m for m in said)
    raw = _read(manifest)
    assert list(raw.columns) == ["path", "labels", "split"]
    assert list(raw["labels"]) == [
        "Bark",
        "Walk_and_footsteps;Slam",
        "Female_singing;Male_singing;Bark",
        "Chewing_and_mastication;Slam",
        "Knock",
    ]  # quoted commas → `;`, in the CSV's order
    assert list(raw["split"]) == ["train"] * 3 + ["test"] * 2
    assert raw["path"].iloc[0] == "FSDKaggle2019.audio_train_curated/0006ae4e.wav"
    df = load_manifest(manifest)
    assert (
        df["labels"].iloc[2] == "Bark;Female_singing;Male_singing"
        and resolve_task(df, "auto", "m") == "multi"
    )
    with pytest.warns(UserWarning, match="left out 2 clip"):
        sub = load_manifest(recipes.fetch(recipe, tmp_path / "data", progress=False, classes=["Slam"]))
    assert list(sub["labels"]) == ["Slam", "Slam"]  # extracted once; clips without Slam left out


def test_fsdkaggle2019_offline_fails_fast_in_one_line(tmp_path):
    recipe = _fsdk2019_recipe_at(tmp_path, "http://127.0.0.1:9")
    t = time.monotonic()
    with pytest.raises(DatasetDownloadError) as e:
        recipes.fetch(recipe, tmp_path / "data", progress=False)
    msg = str(e.value)
    assert time.monotonic() - t < 5 and "\n" not in msg
    assert msg.startswith("FSDKaggle2019: cannot reach http://127.0.0.1:9/FSDKaggle2019.meta.zip")
    assert "source=ARCHIVE/DIR" in msg  # the way out: a copy fetched elsewhere
    assert not list((tmp_path / "data").rglob("*.zip*"))  # nothing half-written


def test_speech_commands_lists_give_split_and_hash_gives_group(tmp_path):
    src = fake_speech_commands(tmp_path / "dl")
    with tarfile.open(tmp_path / "speech_commands_v0.02.tar.gz", "w:gz") as t:
        for f in sorted(src.iterdir()):
            t.add(f, f.name)
    with pytest.raises(
        ChecksumMismatchError, match="checksum mismatch"
    ):  # the fake is not the published file
        recipes.fetch("speech-commands", tmp_path / "out", source=tmp_path / "speech_commands_v0.02.tar.gz")
    assert (tmp_path / "speech_commands_v0.02.tar.gz").exists()  # a user's --from file is never deleted
    manifest = recipes.fetch(
        "speech-commands",
        tmp_path / "out",
        source=tmp_path / "speech_commands_v0.02.tar.gz",
        verify=False,
        classes=["yes", "no"],
    )
    df = _read(manifest)
    assert list(df.columns) == ["path", "label", "split", "group"]
    assert (
        df["path"].iloc[0].startswith("speech_commands_v0.02/")
    )  # extract_to: the tarball has no top folder
    assert set(df["label"]) == {"yes", "no"} and "_background_noise_" not in set(df["label"])
    by_group = df.groupby("group")["split"].agg(set).to_dict()
    assert by_group == {
        "0a7c2a8d": {"train"},
        "1b4c9b89": {"train"},
        "c50f55b8": {"valid"},
        "fe1916ba": {"test"},
    }


def test_source_without_the_dataset_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no meta/esc50.csv in .*empty") as e:
        recipes.fetch("esc50", tmp_path / "out", source=tmp_path / "empty")
    assert "\n" not in str(e.value)
    with pytest.raises(DatasetError, match="no such file or folder"):
        recipes.fetch("esc50", tmp_path / "out", source=tmp_path / "nope.zip")


# --- downloads against a local server
# ------------------------------------------------------------------------


class _Server:
    """Serves `files` on 127.0.0.1 with Range support; `cut_at` truncates the next full response, then the
    server answers 503 `fail_after_cut` times (a dropped connection that stays down)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges: list[str | None] = []
        self.cut_at: int | None = None
        self.fail_after_cut = 0
        self.ignore_range = False
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                state.ranges.append(self.headers.get("Range"))
                body = state.files.get(self.path)
                if body is None:
                    return self.send_error(404)
                if state.fail_after_cut and state.cut_at is None:
                    state.fail_after_cut -= 1
                    return self.send_error(503)
                start = 0
                rng = None if state.ignore_range else self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        return self.send_error(416)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if state.cut_at is not None:
                    self.wfile.write(body[start : state.cut_at])
                    state.cut_at = None
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def server():
    s = _Server()
    s.files["/data.bin"] = np.random.default_rng(0).bytes(300_000)
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_download_resumes_within_one_call(server, tmp_path):
    server.cut_at = 100_000
    body = server.files["/data.bin"]
    out = recipes.download(
        server.url + "/data.bin", tmp_path / "d.bin", sha256=hashlib.sha256(body).hexdigest(), progress=False
    )
    assert out.read_bytes() == body and not (tmp_path / "d.bin.part").exists()
    assert server.ranges == [None, "bytes=100000-"]


def test_interrupted_download_keeps_part_and_next_run_resumes(server, tmp_path):
    body = server.files["/data.bin"]
    server.cut_at, server.fail_after_cut = 120_000, 1
    with pytest.raises(DatasetDownloadError, match="partial file is kept, run again to resume") as e:
        recipes.download(
            server.url + "/data.bin", tmp_path / "d.bin", sha256=_sha(body), progress=False, retries=0
        )
    assert "\n" not in str(e.value)
    assert (tmp_path / "d.bin.part").stat().st_size == 120_000
    out = recipes.download(server.url + "/data.bin", tmp_path / "d.bin", sha256=_sha(body), progress=False)
    assert out.read_bytes() == body
    assert server.ranges[-1] == "bytes=120000-"


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    body = server.files["/data.bin"]
    (tmp_path / "d.bin.part").write_bytes(b"x" * 5000)  # garbage: must be overwritten, not appended to
    server.ignore_range = True
    out = recipes.download(server.url + "/data.bin", tmp_path / "d.bin", sha256=_sha(body), progress=False)
    assert out.read_bytes() == body


def test_bad_checksum_is_a_clear_error_and_nothing_is_kept(server, tmp_path):
    with pytest.raises(ChecksumMismatchError, match="checksum mismatch for d.bin") as e:
        recipes.download(server.url + "/data.bin", tmp_path / "d.bin", sha256="0" * 64, progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "d.bin").exists() and not (tmp_path / "d.bin.part").exists()
    with pytest.warns(UnverifiedDownloadWarning):
        recipes.download(server.url + "/data.bin", tmp_path / "d.bin", progress=False)


def test_http_error_and_mirror_fallback(server, tmp_path):
    with pytest.raises(DatasetDownloadError, match="HTTP 404"):
        recipes.download(server.url + "/missing", tmp_path / "a.bin", progress=False)
    body = server.files["/data.bin"]
    out = recipes.download(
        [server.url + "/missing", server.url + "/data.bin"],
        tmp_path / "b.bin",
        sha256=_sha(body),
        progress=False,
    )
    assert out.read_bytes() == body


def test_offline_is_one_quick_line(tmp_path):
    t = time.monotonic()
    with pytest.raises(DatasetDownloadError) as e:
        recipes.download("http://127.0.0.1:9/x", tmp_path / "x.zip", progress=False, title="ESC-50")
    msg = str(e.value)
    assert time.monotonic() - t < 5
    assert "\n" not in msg and msg.startswith("ESC-50: cannot reach http://127.0.0.1:9/x")
    assert "source=ARCHIVE/DIR" in msg and "spoken-digits-synth" in msg  # jobs say --from (test_layout)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_fetch_downloads_extracts_and_is_idempotent(server, tmp_path):
    archive = _zip(fake_esc50(tmp_path / "dl"), tmp_path / "ESC-50-master.zip")
    server.files["/esc.zip"] = archive.read_bytes()
    text = (ROOT / "datasets" / "esc50.toml").read_text()
    text = text.replace("https://github.com/karolpiczak/ESC-50/archive/master.zip", server.url + "/esc.zip")
    text = text.replace('sha256 = ""', f'sha256 = "{_sha256(archive)}"')
    (tmp_path / "esc50.toml").write_text(text)
    recipe = recipes.load_recipe(tmp_path / "esc50.toml")
    to = tmp_path / "data" / "esc50"
    df = _read(recipes.fetch(recipe, to, progress=False))
    assert (
        len(df) == 30 and not (to / "downloads" / "ESC-50-master.zip").exists()
    )  # archive removed after use
    n = len(server.ranges)
    recipes.fetch(recipe, to, progress=False)
    assert len(server.ranges) == n  # extracted once: no second download


# --- resolve_data and the CLI
# --------------------------------------------------------------------------------


def test_resolve_data(tmp_path, monkeypatch):
    monkeypatch.setenv("EARSHOT_DATA", str(tmp_path / "home"))
    (tmp_path / "my.csv").write_text("path,label\n")
    assert recipes.resolve_data(str(tmp_path / "my.csv")) == tmp_path / "my.csv"
    with pytest.raises(DatasetNotFetchedError, match="fetch esc50 first"):
        recipes.resolve_data("ESC-50")
    with pytest.raises(DatasetError, match="not a dataset recipe"):
        recipes.resolve_data("no-such-thing")
    manifest = recipes.fetch(
        "esc50", source=fake_esc50(tmp_path / "dl")
    )  # default target: $EARSHOT_DATA/esc50
    assert manifest == tmp_path / "home" / "esc50" / "manifest.csv"
    assert recipes.resolve_data("esc50") == manifest


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_job("jobs.datasets", *args, timeout=60, env={**os.environ, **(env or {})})


def test_cli_list_fetch_and_one_line_errors(tmp_path):
    r = _cli("list")
    assert r.returncode == 0 and all(
        n in r.stdout for n in ("esc50", "fsdd", "speech-commands", "spoken-digits-synth")
    )
    (tmp_path / "empty").mkdir()
    r = _cli("fetch", "esc50", "--to", str(tmp_path / "out"), "--from", str(tmp_path / "empty"))
    assert (
        r.returncode == 1
        and r.stderr.count("\n") == 1
        and r.stderr.startswith("earshot: ESC-50: no meta/esc50.csv")
    )
    r = _cli("fetch", "fsdd", "--to", str(tmp_path / "fsdd"), "--from", str(fake_fsdd(tmp_path / "dl")))
    assert r.returncode == 0, r.stderr
    assert "140 clips; 10 classes; splits test: 100, train: 40; 2 groups" in r.stdout
    r = _cli("info", "fsdkaggle2018")
    assert r.returncode == 0 and "none published (skipped)" in r.stdout and "CC BY 4.0" in r.stdout
    r = _cli("build", "esc50")
    assert r.returncode == 1 and "fetch esc50" in r.stderr
