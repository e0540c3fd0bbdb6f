"""Transfer learning by construction: mapped ImageNet weights, a frozen body while the head trains alone,
and transfer from an earlier earshot model keeping the front end the body learned on."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import SMALL_AUDIO


@pytest.mark.parametrize(
    "arch,timm_name,stem",
    [
        ("xresnet18", "resnet18d", "conv1.0.weight"),
        ("mobilenetv3_large_100", "mobilenetv3_large_100", "conv_stem.weight"),
    ],
)
def test_imagenet_file_is_mapped_and_the_body_stays_frozen_while_the_head_trains(
    arch, timm_name, stem, four_class_dir, tmp_path
):
    import timm
    from safetensors.torch import save_file

    from learner.config import AudioConfig
    from learner.model import get_arch
    from learner.train.fit import TrainArgs, build_learner, prepare_data

    src = timm.create_model(timm_name, pretrained=False).state_dict()  # random weights, timm's own layout
    weights = tmp_path / "imagenet.safetensors"
    save_file({k: v.contiguous() for k, v in src.items()}, str(weights))
    args = TrainArgs(
        data=str(four_class_dir),
        out=str(tmp_path / "m"),
        arch=arch,
        pretrained=str(weights),
        bs=16,
        progress=False,
    )
    cfg = AudioConfig(**SMALL_AUDIO)
    used, signals, _, classes = prepare_data(args, cfg)
    learn, _, loaded = build_learner(args, cfg, used, signals, classes, tmp_path / "m")
    assert loaded.startswith("imagenet file")
    spec = get_arch(arch)
    own = learn.model.state_dict()
    first = spec.first_conv + ".weight"
    assert torch.allclose(own[first], src[stem].sum(dim=1, keepdim=True))  # RGB stem folded to one channel
    before = {k: v.clone() for k, v in own.items()}

    learn.freeze()
    learn.fit_one_cycle(1, 1e-2)
    after = learn.model.state_dict()
    head = spec.classifier + "."
    convs = [
        k for k, v in before.items() if v.dim() == 4
    ]  # conv weights: frozen (BatchNorm trains, as in fastai)
    assert convs and all(torch.equal(before[k], after[k]) for k in convs)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(head))


def test_transfer_from_an_earshot_model_keeps_its_front_end(trained_model, four_class_dir, tmp_path):
    from learner.config import AudioConfig
    from learner.train.fit import TrainArgs
    from learner.train.settings import adopt_front_end

    src_audio = json.loads((trained_model.model_dir / "config.json").read_text())["audio"]
    args = TrainArgs(
        data=str(four_class_dir),
        out=str(tmp_path / "m"),
        pretrained=str(trained_model.model_dir),
        auto_sample_rate=True,
        auto_hop=True,
    )
    new_args, cfg = adopt_front_end(args, AudioConfig(sample_rate=22050, n_mels=128, hop_length=512))
    assert (cfg.sample_rate, cfg.n_mels, cfg.hop_length, cfg.n_fft) == (
        src_audio["sample_rate"],
        src_audio["n_mels"],
        src_audio["hop_length"],
        src_audio["n_fft"],
    )
    assert list(cfg.norm_stats) == src_audio["norm_stats"]
    assert not new_args.auto_sample_rate and not new_args.auto_hop


def test_small_sets_get_enough_steps():
    from learner.train.settings import batch_size, epochs_for

    assert batch_size(64, 2000) == 64 and batch_size(64, 50) == 8 and batch_size(32, 5) == 5
    assert epochs_for(10, 2000, 64, 200) == 10  # 31 steps an epoch: 10 epochs are plenty
    assert epochs_for(10, 50, 64, 200) == 34  # 6 steps an epoch
