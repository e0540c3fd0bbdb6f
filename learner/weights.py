"""Starting weights fetched from the Hub (ImageNet, and the online audio backbones), torch-free, so a job can
check them before any audio is decoded: offline is one line in about a second, not a traceback after the
data is read."""

from __future__ import annotations

import os
from pathlib import Path

from learner.hub import offline

IMAGENET_FILE = "model.safetensors"
PROBE_TIMEOUT_S = 2.0  # one HEAD request: an offline machine answers in milliseconds (DNS) or after this


class PretrainedError(RuntimeError):
    """Starting weights could not be loaded; the message is one line that says what to do.

    `problem` is what went wrong and `field` the setting that chose the weights, so a CLI can name its
    own flag instead of the field (`jobs._cli.run`).
    """

    def __init__(self, problem: str, field: str | None = None) -> None:
        self.problem, self.field = problem, field
        fix = f"; set {field} to a weights file, an earlier earshot model or 'none'" if field else ""
        super().__init__(problem + fix)


def _unreachable(repo: str, filename: str, timeout_s: float) -> str | None:
    """None when the Hub answers one HEAD request within `timeout_s`, else a short reason (one line).

    huggingface_hub retries a failed request five times with back-off (about 20 s, one stderr line per
    try); probing once first keeps an offline start fast and quiet.
    """
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    from huggingface_hub import constants, hf_hub_url

    url = hf_hub_url(repo, filename, endpoint=os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    slow = f"no answer from {urlsplit(url).netloc} within {timeout_s:g} s"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return None  # the Hub answered; what it said is for the download to judge
    except TimeoutError:
        return slow
    except OSError as e:  # URLError and socket errors
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            return slow
        text = " ".join(str(getattr(reason, "strerror", None) or reason).split())
        return f"{urlsplit(url).netloc}: {text}" if text else type(e).__name__
    return None


def fetch_imagenet(arch: str, weights: str | None, timeout_s: float = PROBE_TIMEOUT_S) -> Path:
    """The local path of `arch`'s ImageNet weights (Hub id `weights`): from the Hugging Face cache, else
    downloaded now. Imports no torch.

    Called before any audio is decoded (`learner.train.check_start`, and by jobs.train before it even
    imports torch), so an offline run fails within `timeout_s` with one line instead of after decoding
    the data and five retries.
    """
    if weights is None:
        raise PretrainedError(f"{arch} has no ImageNet weights (pretrained='imagenet')", field="pretrained")
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    # a look in the cache folder: no request, no headers
    cached = try_to_load_from_cache(weights, IMAGENET_FILE)
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached)
    where = f"ImageNet weights for {arch} ({weights} on the Hugging Face Hub) are not cached here"
    if offline():
        raise PretrainedError(f"{where} and HF_HUB_OFFLINE is set", field="pretrained")
    reason = _unreachable(weights, IMAGENET_FILE, timeout_s)
    if reason:
        raise PretrainedError(f"{where} and the Hub cannot be reached ({reason})", field="pretrained")
    try:
        return Path(hf_hub_download(weights, IMAGENET_FILE))
    except Exception as e:  # DNS, HTTP, a dropped connection: all mean the same thing to the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PretrainedError(
            f"{where} and the download failed ({' '.join(first.split())})", field="pretrained"
        ) from None
