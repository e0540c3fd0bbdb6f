"""torch modules: the front end, the architecture registry and its archs, starting weights, saliency.

Importing the package files every architecture in the registry (`xresnet`, `baselines`).
"""

from learner.model import backbone_arch, baselines, efficient, xresnet  # noqa: F401  (register the archs)
from learner.model.registry import ArchSpec, create_model, get_arch, list_archs, n_params, register

__all__ = ["ArchSpec", "create_model", "get_arch", "list_archs", "n_params", "register"]
