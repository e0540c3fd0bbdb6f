"""Serve the Gradio demo: the same app as `python app.py` in a checkout, from anywhere once installed.

    earshot demo [--model DIR|USER/NAME[@rev]] [--backend B] [--host 127.0.0.1] [--port 7860]

`--help` lists app.py's flags. The app file ships inside the package (`earshot._space`, the checkout's own
app.py), so an installed earshot needs no checkout; it needs the demo extra: `pip install "earshot[demo]"`.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path


def app_file() -> Path:
    """app.py of this checkout (or editable install), else the copy shipped in the wheel."""
    beside = Path(__file__).resolve().parent.parent / "app.py"
    if beside.is_file():
        return beside
    spec = importlib.util.find_spec("earshot._space")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("earshot's app.py is not installed; reinstall earshot (pip install .)")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" not in args and "--help" not in args and importlib.util.find_spec("gradio") is None:
        raise RuntimeError('the demo needs gradio: pip install "earshot[demo]" (or requirements.txt)')
    path = app_file()
    sys.argv = ["earshot demo", *args]
    runpy.run_path(str(path), run_name="__main__")
    return 0


if __name__ == "__main__":
    from jobs._cli import run

    run(main)
