import pytest
import torch

from learner.config import AudioConfig
from learner.model.backbones import get_backbone
from learner.model.frontend import AudioClassifier, FrontEnd
from learner.model.pretrained import PretrainedError, load_pretrained, resnetd_to_xresnet
from learner.model.registry import create_model, get_arch, list_archs
from learner.model.xresnet import XResNet

CFG = AudioConfig(sample_rate=16000, duration=1.0, n_mels=64, hop_length=256, n_fft=512)


def test_registry_lists_every_arch_with_its_input_view():
    assert {"xresnet18", "xresnet34", "xresnet50", "conv1d_raw", "mfcc_cnn1d"} <= set(list_archs())
    assert get_arch("xresnet18").input == "spectrogram"
    assert get_arch("conv1d_raw").input == "waveform"
    assert get_arch("mfcc_cnn1d").input == "mfcc"
    with pytest.raises(ValueError, match="xresnet18"):
        get_arch("nope")


def test_timm_resnet18d_maps_onto_xresnet_exactly():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    src = timm.create_model("resnet18d", pretrained=False, num_classes=1000).eval()
    for m in src.modules():  # non-trivial BN statistics so a wrong mapping cannot hide
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    dst = XResNet(1, [2, 2, 2, 2], c_in=3, n_out=1000).eval()
    sd = resnetd_to_xresnet(src.state_dict(), dst)
    assert len(sd) == len(dst.state_dict()) - 2  # everything but the classifier
    sd["11.weight"], sd["11.bias"] = src.fc.weight, src.fc.bias
    dst.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    # a safetensors file (the Hub's) stores tensors sorted by name: the timm name restores the order
    stored = dict(sorted(src.state_dict().items()))
    again = resnetd_to_xresnet(stored, dst, "resnet18d")
    assert all(torch.equal(again[k], sd[k]) for k in again if k in sd)
    with pytest.raises(PretrainedError):
        resnetd_to_xresnet(stored, dst)  # without it the sorted order cannot fit


def test_rgb_stem_is_folded_into_one_channel():
    timm = pytest.importorskip("timm")
    src = timm.create_model("resnet18d", pretrained=False).eval()
    rgb = XResNet(1, [2, 2, 2, 2], c_in=3, n_out=10).eval()
    mono = XResNet(1, [2, 2, 2, 2], c_in=1, n_out=10).eval()
    rgb.load_state_dict(resnetd_to_xresnet(src.state_dict(), rgb), strict=False)
    mono.load_state_dict(resnetd_to_xresnet(src.state_dict(), mono), strict=False)
    mono[11].load_state_dict(rgb[11].state_dict())
    x = torch.randn(2, 1, 64, 80)
    with torch.no_grad():
        assert torch.allclose(mono(x), rgb(x.repeat(1, 3, 1, 1)), atol=1e-4)


def test_our_xresnet_is_fastais_xresnet():
    from fastai.vision.models.xresnet import xresnet18

    theirs = xresnet18(pretrained=False, c_in=1, n_out=7).eval()
    ours = create_model("xresnet18", 7, CFG).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 1, 64, 63)
    with torch.no_grad():
        assert torch.equal(theirs(x), ours(x))


def test_imagenet_offline_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    net = create_model("xresnet18", 3, CFG)
    with pytest.raises(PretrainedError, match="set pretrained to .* or 'none'") as e:
        load_pretrained(net, get_arch("xresnet18"), "imagenet")
    assert "\n" not in str(e.value)
    with pytest.raises(PretrainedError, match="no ImageNet weights"):
        load_pretrained(create_model("conv1d_raw", 3, CFG), get_arch("conv1d_raw"), "imagenet")


@pytest.mark.parametrize("duration,frames", [(1.0, 16), (5.0, 80), (2.5, 40)])
def test_conv1d_raw_first_layer_follows_clip_length(duration, frames):
    cfg = CFG.replace(duration=duration)
    net = create_model("conv1d_raw", 5, cfg)
    assert net.head[1].in_features == 8 * frames
    assert net(torch.randn(2, 1, cfg.n_samples)).shape == (2, 5)


# backbone archs need their own rate: tests/test_backbones.py
@pytest.mark.parametrize("arch", [a for a in list_archs() if not get_arch(a).backbone])
def test_each_arch_trains_one_step_and_predicts(arch):
    torch.manual_seed(0)
    model = AudioClassifier(FrontEnd(CFG, get_arch(arch).input), create_model(arch, 3, CFG))
    waves, y = torch.randn(4, CFG.n_samples), torch.tensor([0, 1, 2, 0])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(waves), y)
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    model.eval()
    with torch.no_grad():
        probs = model(waves).softmax(-1)
    assert probs.shape == (4, 3) and torch.allclose(probs.sum(-1), torch.ones(4))


# --- ArchSpec.classifier means one thing: the final layer (what transfer drops and fine-tuning trains first)
# ---


def test_classifier_names_the_final_linear_of_every_arch():
    from learner.model.registry import classifier_keys
    from learner.train.fit import param_groups

    for name in list_archs():
        backbone = get_arch(name).backbone
        cfg = CFG.replace(sample_rate=get_backbone(backbone).front.sample_rate) if backbone else CFG
        spec, net = get_arch(name), create_model(name, 7, cfg)
        last = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)][-1]
        assert spec.classifier == last, name
        assert classifier_keys(spec, net.state_dict()) == [f"{last}.weight", f"{last}.bias"]
        body, head = param_groups(net, spec)
        assert [p.shape for p in head] == [(7, net.get_submodule(last).in_features), (7,)]
        assert len(body) + 2 == len(list(net.parameters()))


def _timm_file(tmp_path):
    import timm

    src = timm.create_model("resnet18d", pretrained=False).eval()
    path = (
        tmp_path / "resnet18d.pth"
    )  # a downloaded timm checkpoint (torch.save keeps the key order the mapping follows)
    torch.save(src.state_dict(), path)
    return src, path


def test_imagenet_transfer_follows_the_specs_classifier(tmp_path):
    """An XResNet whose head sits elsewhere (no dropout: the Linear is module 10) takes the same weights."""
    from learner.model.registry import ArchSpec
    from learner.model.xresnet import resnetd_adapter

    src, path = _timm_file(tmp_path)
    net = torch.nn.Sequential(
        *[m for m in XResNet(1, [2, 2, 2, 2], c_in=1, n_out=5) if not isinstance(m, torch.nn.Dropout)]
    )
    spec = ArchSpec(
        "xresnet18_nodrop", lambda n, c: net, "spectrogram", classifier="10", adapter=resnetd_adapter
    )
    head_before = net[10].weight.detach().clone()
    assert load_pretrained(net, spec, str(path)) == f"imagenet file {path}"
    assert torch.equal(
        net[0][0].weight, src.conv1[0].weight.sum(dim=1, keepdim=True)
    )  # RGB folded into one channel
    assert torch.equal(net[10].weight, head_before)  # the new head is left as initialised


def test_a_weights_file_that_does_not_fit_is_an_error_not_a_partial_load(tmp_path):
    from safetensors.torch import save_file

    spec = get_arch("conv1d_raw")
    donor = create_model("conv1d_raw", 3, CFG)
    sd = {
        k: v for k, v in donor.state_dict().items() if not k.startswith("features.1.")
    }  # a body layer missing
    save_file(sd, str(tmp_path / "partial.safetensors"))
    with pytest.raises(PretrainedError, match="missing .*features.1"):
        load_pretrained(create_model("conv1d_raw", 3, CFG), spec, str(tmp_path / "partial.safetensors"))
    sd = {**donor.state_dict(), "extra.weight": torch.zeros(1)}
    save_file(sd, str(tmp_path / "extra.safetensors"))
    with pytest.raises(PretrainedError, match="unexpected .*extra.weight"):
        load_pretrained(create_model("conv1d_raw", 3, CFG), spec, str(tmp_path / "extra.safetensors"))
    net = create_model("conv1d_raw", 3, CFG)
    head = net.head[10].weight.detach().clone()
    save_file(dict(donor.state_dict()), str(tmp_path / "whole.safetensors"))
    assert load_pretrained(net, spec, str(tmp_path / "whole.safetensors")).startswith("body of")
    assert torch.equal(net.head[7].weight, donor.head[7].weight) and torch.equal(net.head[10].weight, head)


def test_the_two_spec_augments_have_distinct_names():
    from learner.model import frontend
    from learner.train.transforms import SpecAugment

    assert not hasattr(frontend, "SpecAugment")
    tfm = SpecAugment(freq_mask=4, time_mask=4)
    assert type(tfm.module) is frontend.SpecMasking and tfm.module.n_masks == 2
