"""The model registry (name → constructor + the input view it needs), like timm's `register_model`.

The architectures live beside it (`xresnet.py`, `baselines.py`, `efficient.py`, ...) and file themselves
with `@register`, each with its weight adapter; importing `learner.model` imports every module of the
package, so a new architecture is one new module and the registry is complete whatever module asks first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from learner.config import AudioConfig
from learner.model.named import Named, description


@dataclass(frozen=True)
class ArchSpec:
    """What the registry knows about an architecture."""

    name: str
    fn: Callable[[int, AudioConfig], nn.Module]
    input: str  # "spectrogram" | "mfcc" | "waveform"
    weights: str | None = None  # Hub id of ImageNet weights (timm), if any
    first_conv: str | None = None
    # the module name of the final layer (like timm): its keys are "<classifier>.*"
    classifier: str | None = None
    description: str = ""
    # The weight adapter (timm's filter_fn): (state dict of the pretrained network, our model, this spec) →
    # a state dict that fits the model (keys renamed, stem folded to our channels, head dropped).
    adapter: Callable[..., dict] | None = None
    backbone: str | None = None  # a pretrained audio backbone (learner.model.backbones) the network wraps


_REGISTRY: Named[ArchSpec] = Named("arch")


def register(
    name: str | None = None,
    *,
    input: str,
    weights: str | None = None,
    first_conv: str | None = None,
    classifier: str | None = None,
    adapter: Callable[..., dict] | None = None,
    backbone: str | None = None,
) -> Callable:
    """Decorator filing a constructor `fn(n_classes, cfg) -> nn.Module` under `name` (default: its own),
    with the adapter that fits its pretrained weights (`weights`) to it."""
    return _REGISTRY.filing(
        name,
        lambda key, fn: ArchSpec(
            key, fn, input, weights, first_conv, classifier, description(fn), adapter, backbone
        ),
    )


list_archs = _REGISTRY.names  # sorted names
get_arch = _REGISTRY.get  # the ArchSpec of a name; an unknown one is a ValueError listing the choices


def create_model(name: str, n_classes: int, cfg: AudioConfig) -> nn.Module:
    """The network alone (no front end), randomly initialised."""
    return get_arch(name).fn(n_classes, cfg)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def classifier_keys(spec: ArchSpec, keys) -> list[str]:
    """The state-dict keys of `spec`'s final layer among `keys` (none when the arch names no classifier)."""
    head = spec.classifier
    return [k for k in keys if head and k.startswith(head + ".")]
