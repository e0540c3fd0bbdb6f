"""Comparison job, cross-validation, transfer from an earlier model and the waveform augmentations.

Everything trains for one epoch on tiny generated clips (8 kHz, 0.5 s), through the real fastai pipeline.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import learner.score.compare
import learner.train.fit
from learner.config import AudioConfig
from learner.data.sounds import make_dataset
from learner.folder import load_model_dir, read_config
from learner.model.pretrained import PretrainedError
from learner.model.registry import get_arch
from learner.serve.predictor import Predictor
from learner.train.transforms import AudioTensor, WaveAugment

TINY = dict(
    sample_rate=8000, duration=0.5, n_mels=32, n_fft=256, hop_length=128,  # the clip and its log-mel
    mixup=0.0, spec_freq_mask=4, spec_time_mask=4,  # light augmentation
)
TINY_FLAGS = [
    "--sample-rate",
    "8000",
    "--duration",
    "0.5",
    "--n-mels",
    "32",
    "--n-fft",
    "256",
    "--hop",
    "128",
    "--mixup",
    "0",
    "--spec-freq-mask",
    "4",
    "--spec-time-mask",
    "4",
]
VIEWS = {"xresnet18": "spectrogram", "mfcc_cnn1d": "mfcc", "conv1d_raw": "waveform"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_dataset(
        tmp_path_factory.mktemp("tiny"),
        n_per_class=10,
        sr=8000,
        duration=0.5,
        classes=("tone", "chirp", "noise"),
    )


def _spy_starts(mp, starts: dict) -> None:
    """Record each network's weights right after its starting weights were loaded (before any step)."""
    real = learner.train.fit.load_pretrained

    def spy(net, spec, source):
        loaded = real(net, spec, source)
        starts[spec.name] = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return loaded

    mp.setattr(learner.train.fit, "load_pretrained", spy)


@pytest.fixture(scope="module")
def compared(tiny_dir, tmp_path_factory):
    """One `jobs.compare` run over the three input views; keeps each TrainResult and each start state."""
    from jobs.compare import main

    out = tmp_path_factory.mktemp("compare")
    results, starts = {}, {}
    real_train = learner.score.compare.train
    with pytest.MonkeyPatch.context() as mp:
        _spy_starts(mp, starts)
        mp.setattr(learner.score.compare, "train", lambda a, c: results.setdefault(a.arch, real_train(a, c)))
        assert (
            main(
                [
                    "--data",
                    str(tiny_dir),
                    "--archs",
                    ",".join(VIEWS),
                    "--epochs",
                    "1",
                    "--bs",
                    "8",
                    "--out",
                    str(out),
                    "--pretrained",
                    "none",
                    "--quiet",
                    *TINY_FLAGS,
                ]
            )
            == 0
        )
    return out, results, starts


def test_compare_writes_report_with_every_arch_and_the_plots(compared):
    out, _, _ = compared
    report = json.loads((out / "report.json").read_text())
    assert [a["arch"] for a in report["archs"]] == list(VIEWS)
    for a in report["archs"]:
        for k in ("accuracy", "top3_accuracy", "map3", "macro_f1"):
            assert 0.0 <= a[k] <= 1.0, (a["arch"], k)
        assert a["params"] == read_config(out / a["arch"])["params"] > 1000
        assert a["train_time_s"] > 0 and a["clips_per_s"] > 0 and a["model_clips_per_s"] > 0
        assert a["start"] == "none (random init)" and a["input"] == VIEWS[a["arch"]]
        assert a["predictor_accuracy"] == pytest.approx(
            a["accuracy"]
        )  # inference path == training's validation
        assert a["n_valid"] == 6 and a["clips"] == 6
    md = (out / "report.md").read_text()
    for arch in VIEWS:
        assert f"| {arch} |" in md
    assert "macro F1" in md and "clips/s" in md and report["machine"]["cores"] >= 1
    for png in ("confusion_matrices.png", "learning_curves.png"):
        assert (out / png).stat().st_size > 10_000 and png in md


@pytest.mark.parametrize("arch", list(VIEWS))
def test_each_input_view_takes_fastai_steps_and_predicts_through_the_predictor(compared, arch):
    out, results, starts = compared
    res = results[arch]
    learn = res.learner
    steps = {int(s["step"]) for s in learn.opt.state.values() if "step" in s}
    assert (
        steps == {3} and np.isfinite(res.history["train_loss"]).all()
    )  # Adam steps: 24 training clips / bs 8
    after = learn.model.state_dict()
    moved = [k for k, v in starts[arch].items() if v.is_floating_point() and not torch.equal(v, after[k])]
    assert any(k.endswith("weight") for k in moved), "no weight changed: no optimiser step happened"
    assert read_config(res.model_dir)["input"] == VIEWS[arch] == get_arch(arch).input
    probs, _ = learn.get_preds(ds_idx=1)
    paths = list(learn.dls.valid_ds.items["path"])
    p = Predictor.from_dir(res.model_dir)
    ours = np.stack([r.probs for r in p.predict_many(paths)])
    np.testing.assert_allclose(ours, probs.numpy(), atol=1e-5)
    assert p.predict(paths[0], top_k=3).labels[0] in ("tone", "chirp", "noise")


def test_conv1d_raw_is_sized_by_the_configured_clip_and_predicts_longer_files(compared, tmp_path):
    import soundfile as sf

    out, results, _ = compared
    net = results["conv1d_raw"].learner.model
    assert net.head[1].in_features == 8 * ((4000 + 2 * 2047 - 4096) // 1000 + 1)  # 0.5 s at 8 kHz → 4 frames
    sf.write(tmp_path / "long.wav", np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 8000)
    pred = Predictor.from_dir(out / "conv1d_raw").predict(
        tmp_path / "long.wav"
    )  # 2 s → 0.5 s windows, hop 0.25 s
    assert pred.window_probs.shape == (7, 3) and pred.probs.shape == (3,)


def test_pretrained_imagenet_is_recorded_per_arch_and_offline_is_one_line(tiny_dir, tmp_path, monkeypatch):
    starts = learner.score.compare.plan_starts(["xresnet18", "conv1d_raw", "mfcc_cnn1d"], "imagenet")
    assert starts["xresnet18"][0] == "imagenet"
    assert (
        starts["conv1d_raw"] == ("none", "no ImageNet weights: from scratch")
        and starts["mfcc_cnn1d"][0] == "none"
    )
    pairs = learner.score.compare.plan_starts(["xresnet18", "conv1d_raw"], "conv1d_raw=/some/model")
    assert pairs == {
        "xresnet18": ("none", "not named in --pretrained: from scratch"),
        "conv1d_raw": ("/some/model", "as asked"),
    }
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from learner.train.fit import TrainArgs

    args = TrainArgs(data=str(tiny_dir), out=str(tmp_path / "c"), epochs=1, progress=False)
    with pytest.raises(PretrainedError, match="set pretrained to .* or 'none'") as e:
        learner.score.compare.compare(["conv1d_raw", "xresnet18"], args, AudioConfig(**TINY))
    assert (
        "\n" not in str(e.value) and not (tmp_path / "c" / "conv1d_raw").exists()
    )  # failed before any training


def test_cross_validation_writes_one_result_per_fold(tiny_dir, tmp_path):
    from jobs.train import main

    df = pd.DataFrame({"path": sorted(str(p) for p in tiny_dir.rglob("*.wav"))})
    df["label"] = [p.split("/")[-2] for p in df["path"]]
    df["fold"] = df.groupby("label").cumcount() % 3 + 1
    df.to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "cv"
    assert (
        main(
            [
                "--data",
                str(tmp_path / "manifest.csv"),
                "--out",
                str(out),
                "--arch",
                "mfcc_cnn1d",
                "--epochs",
                "1",
                "--bs",
                "8",
                "--pretrained",
                "none",
                "--cv",
                "--quiet",
                "--no-pickle",
                *TINY_FLAGS,
            ]
        )
        == 0
    )
    report = json.loads((out / "cv_report.json").read_text())
    assert [f["fold"] for f in report["folds"]] == [1, 2, 3]
    for f in report["folds"]:
        m = json.loads((out / f"fold-{f['fold']}" / "metrics.json").read_text())
        assert m["accuracy"] == f["accuracy"] and m["n_valid"] == (df["fold"] == f["fold"]).sum()
        assert read_config(out / f"fold-{f['fold']}")["train"]["valid_fold"] == f["fold"]
    accs = [f["accuracy"] for f in report["folds"]]
    assert report["mean"]["accuracy"] == pytest.approx(np.mean(accs))
    assert report["std"]["accuracy"] == pytest.approx(np.std(accs, ddof=1))
    assert np.asarray(report["confusion"]).sum() == len(df)  # every clip validated exactly once
    md = (out / "cv_report.md").read_text()
    assert md.count("\n| 1 |") == md.count("\n| 2 |") == md.count("\n| 3 |") == 1 and "mean ± std" in md


def test_assigned_folds_keep_each_group_in_one_fold():
    from learner.data.manifest import assign_folds

    df = pd.DataFrame(
        {
            "path": [f"{i}.wav" for i in range(40)],
            "label": ["a", "b"] * 20,
            "group": [f"voice{i % 8}" for i in range(40)],
        }
    )
    folds = assign_folds(df, 4, seed=0)
    assert sorted(folds["fold"].unique()) == [1, 2, 3, 4]
    assert (folds.groupby("group")["fold"].nunique() == 1).all()
    assert folds["fold"].equals(assign_folds(df, 4, seed=0)["fold"])


def test_transfer_keeps_the_old_body_and_puts_a_new_head_on(tiny_dir, tmp_path):
    from jobs.train import main

    old = tmp_path / "old"
    common = ["--arch", "mfcc_cnn1d", "--epochs", "1", "--bs", "8", "--quiet", "--no-pickle", *TINY_FLAGS]
    three = tmp_path / "three"
    for c in ("tone", "chirp", "noise"):
        (three / c).mkdir(parents=True)
        for f in sorted((tiny_dir / c).glob("*.wav")):
            (three / c / f.name).symlink_to(f)
    assert main(["--data", str(three), "--out", str(old), "--pretrained", "none", *common]) == 0
    four = make_dataset(
        tmp_path / "four",
        n_per_class=8,
        sr=8000,
        duration=0.5,
        seed=3,
        classes=("tone", "chirp", "noise", "clicks"),
    )
    starts: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        _spy_starts(mp, starts)
        assert (
            main(["--data", str(four), "--out", str(tmp_path / "new"), "--pretrained", str(old), *common])
            == 0
        )
    _, old_sd = load_model_dir(old)
    start = starts["mfcc_cnn1d"]
    for key in (
        "features.0.weight",
        "features.1.running_mean",
        "head.2.weight",
    ):  # conv, BN statistics, dense body
        assert torch.equal(start[key], old_sd[key]), key
    assert old_sd["head.5.weight"].shape[0] == 3 and start["head.5.weight"].shape[0] == 4
    cfg = read_config(tmp_path / "new")
    assert (
        cfg["classes"] == ["chirp", "clicks", "noise", "tone"] and cfg["pretrained"] == f"body of {old.name}"
    )  # no local paths
    with pytest.raises(PretrainedError, match="arch=mfcc_cnn1d"):
        main(
            [
                "--data",
                str(four),
                "--out",
                str(tmp_path / "x"),
                "--pretrained",
                str(old),
                "--arch",
                "conv1d_raw",
                "--epochs",
                "1",
                "--quiet",
                *TINY_FLAGS,
            ]
        )


# --- waveform augmentations ------------------------------------------------------------------------------

SR = 16000


def _tone(freq: float = 500.0, burst: tuple[float, float] | None = None) -> AudioTensor:
    t = np.arange(SR) / SR
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    if burst:
        x *= (t >= burst[0]) & (t < burst[1])
    return AudioTensor.create(x.astype(np.float32), sr=SR)


def _peak_hz(x: torch.Tensor) -> float:
    y = x.reshape(-1).numpy()
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1 / SR)[spec.argmax()])


def _active_s(x: torch.Tensor, frame: int = 160) -> float:
    y = x.reshape(-1).numpy()
    rms = np.sqrt(np.mean(y[: y.size // frame * frame].reshape(-1, frame) ** 2, axis=1))
    return float((rms > 0.5 * rms.max()).sum() * frame / SR)


SEED = 4  # first draws of default_rng(4): u = 0.943 (pitch +1.77 st, stretch rate 1.177, gain +5.3 dB)


def _first_draw(lo: float, hi: float) -> float:
    return float(np.random.default_rng(SEED).uniform(lo, hi))


@pytest.mark.parametrize("kind", ["pitch", "stretch", "noise", "gain"])
def test_each_waveform_augmentation_is_inert_in_validation_and_acts_in_training(kind):
    kw = {
        "pitch": dict(pitch=2.0),
        "stretch": dict(stretch=0.2),
        "noise": dict(noise_snr=(10.0, 20.0)),
        "gain": dict(gain_db=6.0),
    }[kind]
    x = _tone(burst=(0.35, 0.65)) if kind == "stretch" else _tone()
    aug = WaveAugment(**kw, p=1.0, seed=SEED)
    assert torch.equal(aug(x, split_idx=1), x)  # validation / inference: untouched
    y = aug(x, split_idx=0)
    assert isinstance(y, AudioTensor) and y.shape == x.shape and y.sr == SR and not torch.equal(y, x)
    if kind == "pitch":
        assert _peak_hz(y) == pytest.approx(500 * 2 ** (_first_draw(-2, 2) / 12), rel=0.005)
    elif kind == "stretch":
        assert _peak_hz(y) == pytest.approx(500, abs=3)  # pitch kept
        assert _active_s(y) == pytest.approx(0.3 / _first_draw(0.8, 1.2), abs=0.02)
    elif kind == "noise":
        snr = 10 * np.log10(float((x**2).mean()) / float(((y - x) ** 2).mean()))
        assert snr == pytest.approx(_first_draw(10, 20), abs=0.3)
    else:
        ratio = (y / x)[x.abs() > 1e-3]
        assert torch.allclose(ratio, torch.full_like(ratio, 10 ** (_first_draw(-6, 6) / 20)), rtol=1e-4)


def test_pitch_shift_is_fast_for_any_draw():
    """torchaudio's pitch_shift resamples between int(sr / rate) and sr (tiny gcd): ≈ 18 s per second of
    audio."""
    import time

    aug = WaveAugment(pitch=2.0, p=1.0, seed=0)
    for sr in (16000, 22050):
        x = AudioTensor.create(np.random.default_rng(0).normal(0, 0.1, sr).astype(np.float32), sr=sr)
        t = time.perf_counter()
        for _ in range(5):
            assert aug(x, split_idx=0).shape == x.shape
        assert time.perf_counter() - t < 5.0


def test_crossval_and_compare_share_one_fold_planner(tmp_path):
    import pandas as pd

    from learner.data.manifest import CV_MANIFEST, ManifestError, plan_folds

    df = pd.DataFrame(
        {
            "path": [f"/x/{i}.wav" for i in range(12)],
            "label": ["a", "b"] * 6,
            "group": [f"spk{i // 2}" for i in range(12)],
        }
    )
    plan = plan_folds(df, "data.csv", tmp_path, 3, seed=1)
    assert plan.data == str(tmp_path / CV_MANIFEST) and plan.folds == [1, 2, 3] and "by group" in plan.source
    written = pd.read_csv(plan.data)
    assert written.groupby("group")["fold"].nunique().max() == 1  # a speaker stays in one fold
    again = plan_folds(written, plan.data, tmp_path / "other", None)
    assert again.data == plan.data and again.folds == [1, 2, 3] and not (tmp_path / "other").exists()
    with pytest.raises(ManifestError, match="drop n_folds="):
        plan_folds(written, plan.data, tmp_path, 3)
    with pytest.raises(ManifestError, match="n_folds=K"):
        plan_folds(df, "data.csv", tmp_path, None)
    import learner.score.compare
    import learner.train.crossval

    for module in (
        learner.score.compare,
        learner.train.crossval,
    ):  # neither plans (or plots curves) on its own
        assert module.plan_folds is plan_folds and not hasattr(module, "assign_folds")
        assert not hasattr(module, "plot_learning_curves") and not hasattr(module, "_folds_of")


def test_one_curves_plot_for_a_run_and_for_many(tmp_path):
    import pandas as pd

    from learner.report.plots import plot_curves

    h = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "train_loss": [1.0, 0.7, 0.5],
            "valid_loss": [1.1, 0.8, 0.7],
            "accuracy": [0.5, 0.6, 0.7],
            "top3": [0.9, 0.95, 1.0],
            "time": ["0:01"] * 3,
        }
    )
    loss, metrics = plot_curves(h)
    assert len(loss.lines) == 2 and {ln.get_label() for ln in metrics.lines} == {"accuracy", "top3"}
    loss, metrics = plot_curves(
        {"xresnet18": h, "conv1d_raw": h.assign(accuracy=[0.4, 0.5, 0.6])}, tmp_path / "c.png"
    )
    assert len(loss.lines) == 4 and [ln.get_label() for ln in metrics.lines] == ["xresnet18", "conv1d_raw"]
    assert (
        list(metrics.lines[1].get_ydata()) == [0.4, 0.5, 0.6] and (tmp_path / "c.png").stat().st_size > 1000
    )


def test_compare_decodes_the_data_once_for_every_arch_and_says_each_note_once(
    tiny_dir, tmp_path, monkeypatch, caplog
):
    """Issue 25 item 20: the archs share one decoded-signal cache (removed afterwards), and a note about
    the data (here: an undecodable file) is said once, not once per arch."""
    import logging

    import learner.data.signals as signals
    from learner.train.fit import TrainArgs

    data = tmp_path / "data"
    shutil.copytree(tiny_dir, data)
    (data / "tone" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    decoded = []
    real = signals.load_signal
    monkeypatch.setattr(signals, "load_signal", lambda path, cfg: decoded.append(path) or real(path, cfg))
    args = TrainArgs(data=str(data), out=str(tmp_path / "c"), epochs=1, pretrained="none", progress=False)
    with caplog.at_level(logging.WARNING, logger="learner"):
        learner.score.compare.compare(["mfcc_cnn1d", "conv1d_raw"], args, AudioConfig(**TINY))
    good = [d for d in decoded if not d.endswith("broken.wav")]  # a failure is not cached: tried per arch
    assert sorted(good) == sorted(set(good)) and len(good) == len(list(data.rglob("*.wav"))) - 1
    assert not (tmp_path / "c" / ".signals").exists()
    broken = [r for r in caplog.records if "broken.wav" in r.getMessage()]
    assert len(broken) == 1, [r.getMessage() for r in broken]
