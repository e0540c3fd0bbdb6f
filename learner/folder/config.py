"""`ModelConfig`: config.json of a model folder as one dataclass beside `AudioConfig`.

Training builds it, export adds its ONNX record, the Hub and every loader read it back. `from_dict` is
tolerant (unknown keys are kept in `extra` and written back, so folders written by newer versions load and
round-trip), and `read` validates with `learner.folder.schema` before anything is built from the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learner.config import AudioConfig
from learner.folder.files import CONFIG, read_config, write_json


@dataclass
class ModelConfig:
    """What a model folder says about its model: enough to rebuild the network and its preprocessing."""

    arch: str
    classes: list[str]
    audio: AudioConfig = field(default_factory=AudioConfig)
    input: str = "spectrogram"
    task: str = "single"  # "single" (softmax) or "multi" (a sigmoid per class)
    thresholds: dict[str, float] | None = None
    thresholds_rule: str | None = None
    # classes that mean "none of the words" and what a rejection is called (learner.serve.reject); None in
    # folders written before it: the top class is the answer
    reject: dict[str, Any] | None = None
    params: int | None = None
    pretrained: str | None = None
    split: dict[str, Any] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    earshot_version: str | None = None
    onnx: dict[str, Any] | None = None  # written by learner.serve.export: files, parity, int8 record
    backbone: dict[str, Any] | None = None  # a pretrained audio backbone: name, licence, citation
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they are

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        known["audio"] = AudioConfig.from_dict(d.get("audio") or {})
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d["audio"] = self.audio.to_dict()
        return {**self.extra, **{k: v for k, v in d.items() if v is not None}}

    @classmethod
    def read(cls, folder: str | Path) -> ModelConfig:
        """config.json of `folder`, validated (one `ModelDirError` naming the file, key and problem)."""
        return cls.from_dict(read_config(Path(folder)))

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / CONFIG
        write_json(path, self.to_dict())
        return path
