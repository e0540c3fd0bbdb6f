"""learner/demo: what the demo page shows a newcomer (issue 12, part C, item 16: axes, titles, padding,
timeline, Model tab, API) and the threshold box's two decimals (issue 25, item 20)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_sound
from tests.conftest import save_untrained

SR = 16000


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("demo_clips")
    rng = np.random.default_rng(3)
    short = np.concatenate(
        [make_sound("tone", SR, 0.4, rng), np.zeros(SR // 2, np.float32)]
    )  # 0.4 s of sound
    sf.write(d / "short.wav", short, SR)
    sf.write(d / "full.wav", make_sound("tone", SR, 1.0, rng), SR)
    return {"short": d / "short.wav", "full": d / "full.wav"}


def _hatched(ax) -> list:
    return [p for p in ax.patches if p.get_hatch()]


def test_plots_have_hz_axes_colour_bars_and_plain_titles(trained_model, clips):
    from learner.demo.classify import classify
    from learner.serve.predictor import Predictor

    out = classify(Predictor.from_dir(trained_model.model_dir), clips["full"])
    spec, sal = out.spectrogram, out.saliency
    assert len(spec.axes) == 2 and spec.axes[1].get_ylabel() == "dB"  # the image and its colour bar
    assert len(sal.axes) == 3 and sal.axes[2].get_ylabel() == "share of peak"
    ax = spec.axes[0]
    assert ax.get_ylabel() == "frequency (Hz)"
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert {"100", "500", "1k", "2k", "4k"} <= set(ticks), ticks
    # the 1 kHz tick sits on the mel band whose centre is 1 kHz
    from learner.audio.melspec import hz_to_mel

    cfg = trained_model_cfg = Predictor.from_dir(trained_model.model_dir).cfg
    lo, hi = float(hz_to_mel(cfg.f_min)), float(hz_to_mel(cfg.f_max or cfg.sample_rate // 2))
    row = dict(zip(ticks, ax.get_yticks()))["1k"]
    assert row == pytest.approx((float(hz_to_mel(1000)) - lo) / (hi - lo) * (cfg.n_mels + 1) - 1)
    assert trained_model_cfg.n_mels == 64
    assert sal.axes[0].get_title().startswith("where the model listened for 'tone'")
    assert spec.axes[0].get_title().startswith("what the model heard")
    assert not _hatched(ax) and "repeats it" not in out.message  # a full clip is not padded


def test_a_short_clip_shows_where_the_padding_starts(trained_model, clips):
    from learner.demo.classify import classify
    from learner.serve.predictor import Predictor

    predictor = Predictor.from_dir(trained_model.model_dir)
    centred = classify(
        predictor, clips["short"]
    )  # the default pad_mode: the sound sits in silence, nothing repeats
    assert (
        not _hatched(centred.spectrogram.axes[0]) and "centred in silence in the 1 s clip" in centred.message
    )
    predictor.cfg.pad_mode = "repeat"  # a model trained with --pad repeat
    out = classify(predictor, clips["short"])
    for fig in (out.spectrogram, out.saliency):
        ax = fig.axes[0]
        (shade,) = _hatched(ax)
        x0 = shade.get_x() if hasattr(shade, "get_x") else shade.get_xy()[0][0]
        assert 0.35 < x0 < 0.5  # the 0.4 s sound (trimmed), then its repeats
        assert [t.get_text() for t in ax.texts] == ["repeat-padding"]
    assert "the rest of the 1 s clip repeats it" in out.message


def test_timeline_has_no_stray_labels():
    from learner.demo.classify import timeline_figure

    probs = np.full((6, 5), 0.05)
    probs[:, 0], probs[:, 1], probs[:, 2] = 0.5, 0.35, 0.3
    probs[3] = [0.05, 0.05, 0.05, 0.05, 0.8]  # one window won by a class outside the top 3
    fig = timeline_figure([0, 0.5, 1, 1.5, 2, 2.5], probs, ["a", "b", "c", "d", "e"], 1.0)
    ax = fig.axes[0]
    assert len(ax.texts) == 0 and len(ax.lines) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "a (mean 0.42)",
        "b (mean 0.30)",
        "c (mean 0.26)",
    ]


def test_model_tab_shows_no_server_paths_and_keeps_words_whole(app_module, trained_model):
    from learner.demo.model_tab import model_info

    served = app_module.served
    assert served.predictor.model_id == trained_model.model_dir.name
    info = model_info(served.predictor, served.folder)
    text = "\n".join([info.summary, info.audio, info.training])
    for local in (str(trained_model.model_dir.parent), "/tmp/", str(Path.home())):
        assert local not in text
    assert "| data | `four_class" in info.training  # the data set's name, not where it lies on the server
    config = app_module.demo.config
    tab = next(c for c in config["components"] if c.get("props", {}).get("label") == "Model")
    assert "earshot-model" in tab["props"]["elem_classes"]
    css = "".join(str(c["props"].get("value", "")) for c in config["components"] if c.get("type") == "html")
    assert ".earshot-model td, .earshot-model th, .earshot-model code {" in css
    assert "white-space: nowrap; word-break: keep-all;" in css


def test_api_outputs_have_names(app_module):
    info = app_module.demo.get_api_info()
    returns = [r["label"] for r in info["named_endpoints"]["/classify"]["returns"]]
    assert returns == ["Top 5", "spectrogram", "where the model listened", "timeline", "message"]


@pytest.fixture(scope="module")
def high_low_model(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["high", "low"])


# --- issue 25, item 20 --------------------------------------------------------------------------------------


def test_threshold_box_starts_at_two_decimals(high_low_model, tmp_path):
    from learner.demo import events as demo_events
    from learner.serve.predictor import Predictor

    folder = tmp_path / "calibrated"
    shutil.copytree(high_low_model, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["thresholds"] = {"high": 0.4413515, "low": 0.4413515}
    (folder / "config.json").write_text(json.dumps(cfg))
    assert demo_events.default_threshold(Predictor.from_dir(folder)) == 0.44
