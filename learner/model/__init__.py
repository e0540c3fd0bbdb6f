"""torch modules: the front end, the architecture registry and its archs, starting weights, saliency.

Importing the package imports every module in it, so each architecture files itself in the registry
(`@register` in `xresnet`, `baselines`, `efficient`, ...): a new architecture is one new module.
"""

import importlib
import pkgutil

from learner.model.registry import ArchSpec, create_model, get_arch, list_archs, n_params, register

__all__ = ["ArchSpec", "create_model", "get_arch", "list_archs", "n_params", "register"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
