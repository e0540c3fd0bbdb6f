"""Each way of extending earshot is one declaration in one place (docs/contributing.md): a flag is a
dataclass field declared with `option(default, help)`, an augmentation one registered class, an architecture
one decorated function (with its weight adapter) in a new module, an event format one table entry. Each test
makes one, the way a contributor would, and checks that every part of earshot that should see it does."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_flag_is_one_field_declared_with_option():
    from jobs._cli import add_field_args, field_values
    from learner.config import option
    from learner.train.args import TrainArgs

    fields = [(f.name, f.type, f) for f in dataclasses.fields(TrainArgs)]
    fields.append(("warmup_pct", float, option(0.25, "share of warm-up")))
    Extended = dataclasses.make_dataclass("Extended", fields)  # TrainArgs with one more field
    p = argparse.ArgumentParser()
    add_field_args(p, Extended, ("", "data", "run", "split", "scaling"))
    args = p.parse_args(["--data", "d", "--out", "o", "--warmup-pct", "0.5"])
    assert field_values(args, Extended)["warmup_pct"] == 0.5
    assert "share of warm-up" in p.format_help()
    assert p.parse_args(["--data", "d", "--out", "o"]).warmup_pct == 0.25  # the field's default, once


def test_an_augmentation_is_one_registered_class(monkeypatch):
    import torch

    from learner.train import augment
    from learner.train.transforms import AudioTensor, WaveAugment

    monkeypatch.setattr(augment, "AUGMENTATIONS", dict(augment.AUGMENTATIONS))

    @augment.augmentation
    class Invert(augment.WaveAug):
        field = "aug_invert"

        def __call__(self, y, sr, rng):
            return -y

    aug = WaveAugment(p=1.0, seed=0)
    aug.steps = augment.enabled({"aug_invert": True})
    x = AudioTensor.create(np.linspace(-0.5, 0.5, 1600, dtype=np.float32), sr=16000)
    assert torch.equal(aug(x, split_idx=0), -x)  # training: applied
    assert torch.equal(aug(x, split_idx=1), x)  # validation: untouched


NEW_ARCH = '''
from torch import nn

from learner.model.registry import register


def adapt(sd, model, spec):
    return {k.replace("old.", ""): v for k, v in sd.items()}


@register(input="mfcc", classifier="1", adapter=adapt)
def tiny_mlp(n_classes, cfg):
    """A two-layer MLP on pooled MFCCs."""
    pool = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten())
    return nn.Sequential(pool, nn.Linear(cfg.n_mfcc, n_classes))
'''


def test_an_architecture_is_one_new_module(tmp_path):
    """A copy of learner/ with one file added: the registry, the jobs' --arch list and the weight adapter
    all know the new architecture, and no other file was edited."""
    import shutil

    shutil.copytree(ROOT / "learner", tmp_path / "learner", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "jobs", tmp_path / "jobs", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "learner" / "model" / "tiny_mlp.py").write_text(NEW_ARCH)
    code = (
        "import torch; from learner.model import list_archs, create_model, get_arch; "
        "from learner.config import AudioConfig; from jobs._cli import archs; "
        "net = create_model('tiny_mlp', 3, AudioConfig()); spec = get_arch('tiny_mlp'); "
        "sd = {'old.' + k: v for k, v in net.state_dict().items()}; "
        "print('tiny_mlp' in list_archs(), 'tiny_mlp' in archs(), spec.input, "
        "sorted(spec.adapter(sd, net, spec)) == sorted(net.state_dict()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "mfcc", "True"]


def test_an_event_format_is_one_table_entry(monkeypatch, tmp_path):
    from jobs import score as score_job
    from learner.score import event_writers

    table = dict(event_writers.EVENT_WRITERS)
    table["tsv"] = event_writers.EventWriter(
        "tsv", ".events.tsv", "one TSV of events per input file", lambda events, rate: "start\tend\n"
    )
    monkeypatch.setattr(score_job, "EVENT_WRITERS", table)
    help_text = score_job.parser().format_help()
    assert "--tsv DIR" in help_text and "one TSV of events per input file" in help_text


@pytest.mark.parametrize("name", ["parquet", "csv", "jsonl"])
def test_output_formats_come_from_the_writers_table(name):
    from learner.score.writers import FORMATS, WRITERS

    assert name in FORMATS and WRITERS[name].name == name
