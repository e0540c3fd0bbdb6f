"""`import earshot`: the project's name as a package. It re-exports the public API of `learner` (where the
code lives) and loads nothing heavy until a name is used:

    import earshot
    p = earshot.Predictor.from_pretrained("models/my_sounds")
"""

from __future__ import annotations

from typing import Any

import learner
from learner import __all__, __version__  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(learner, name)
    raise AttributeError(f"module 'earshot' has no attribute {name!r} (its names: {', '.join(__all__)})")


def __dir__() -> list[str]:
    return sorted(__all__)
