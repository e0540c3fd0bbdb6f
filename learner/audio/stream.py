"""Long files in bounded memory: decode, resample and cut windows block by block, with the very samples and
windows the whole-file path gives.

`decode` holds a whole file (mono at the file's rate, then resampled whole): a 3-hour 48 kHz stereo FLAC
costs gigabytes. Here the same decoder chain hands its blocks to a `Resampler` that resamples overlapping
spans and keeps only each span's middle (where scipy's filter sees exactly the samples the whole-file call
sees), and `WindowStream` cuts the windows of `ClipPipeline.chunks` as the samples arrive. Peak memory is a
resampling block plus one chunk of windows, whatever the file's length; the samples equal `decode`'s.

    stream_decode(path, 22050, on_samples)  # on_samples(block) gets consecutive blocks at 22.05 kHz
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from learner.audio.errors import Decoded, Source
from learner.audio.pipeline import AUTO_WINDOW_FACTOR, ClipPipeline, WindowPlan
from learner.audio.signal import resample_ratio

_EMPTY = np.zeros(0, np.float32)


@dataclass(frozen=True)
class StreamSizes:
    """How a long file is cut on its way: none of these change a sample, a window or a score."""

    chunk: int = 256  # windows per model call group (`ClipPipeline.chunks`)
    part: int = 1 << 20  # model-rate samples per message from a decoding process to the model
    block: int = 1 << 22  # file-rate samples resampled at a time (16 MB of float32)


def window_group(chunk: int, batch_size: int) -> int:
    """Windows to score at a time in a stream: one model batch when batches tile `chunk` (then the batches are
    those of `Predictor.predict_windows`, 32-aligned from the first window, and a stream holds only a batch's
    span of signal), else a whole chunk."""
    return batch_size if 0 < batch_size <= chunk and chunk % batch_size == 0 else chunk


def stream_threshold(pipeline: ClipPipeline, plan: WindowPlan, chunk: int) -> int:
    """Model-rate samples above which a signal is windowed in more than one chunk: up to here a file is held
    whole (exactly as before), past it windows are cut and scored as the samples arrive."""
    return max(AUTO_WINDOW_FACTOR * pipeline.cfg.n_samples, plan.size + chunk * plan.hop)


class Resampler:
    """`resample(x, orig_sr, target_sr)` fed block by block: `push` returns the spans it completes, `finish`
    the rest; together they equal one whole-signal call (float for float).

    Each span [start, start + block) is resampled with `margin` input samples either side and cut to its
    own outputs; spans start at multiples of `down`, so their outputs fall on the whole call's grid, and the
    margin covers scipy's filter (10 · max(up, down) upsampled samples each side).
    """

    def __init__(self, orig_sr: int, target_sr: int, block: int = StreamSizes.block) -> None:
        ratio = resample_ratio(orig_sr, target_sr)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.same = orig_sr == target_sr or self.up == self.down  # `resample` returns the input as is
        # input samples, generous
        reach = -(-(20 * max(self.up, self.down) + self.up + self.down) // self.up) + 2
        self.margin = -(-reach // self.down) * self.down
        self.block = max(self.margin, -(-int(block) // self.down) * self.down)
        self._buf, self._at = _EMPTY, 0  # held input and where it starts in the signal
        self._next = 0  # first input sample of the next span (a multiple of down)
        self._pending: list[np.ndarray] = []
        self._taps: np.ndarray | None = None
        self.n_in = 0

    def push(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        self.n_in += x.size
        if self.same:
            return [x]
        self._pending.append(x)
        out = []
        while self.n_in >= self._next + self.block + self.margin:
            out.append(self._span(self._next + self.block))
        return out

    def finish(self) -> np.ndarray:
        if self.same or self.n_in == 0:
            return _EMPTY
        return self._span(None)

    def _filter(self) -> np.ndarray:
        """scipy's own default filter for this ratio (a Kaiser-windowed sinc, as float32 like the samples),
        designed once: a live stream resamples a few thousand samples at a time, ten times a second."""
        if self._taps is None:
            from scipy.signal import firwin

            m = max(self.up, self.down)
            self._taps = firwin(20 * m + 1, 1.0 / m, window=("kaiser", 5.0)).astype(np.float32)
        return self._taps

    def _span(self, end: int | None) -> np.ndarray:
        from scipy.signal import resample_poly

        if self._pending:
            self._buf = np.concatenate([self._buf, *self._pending])
            self._pending = []
        lo = max(0, self._next - self.margin)
        hi = self.n_in if end is None else end + self.margin
        y = resample_poly(self._buf[lo - self._at : hi - self._at], self.up, self.down, window=self._filter())
        skip = (self._next - lo) * self.up // self.down
        y = y[skip:] if end is None else y[skip : skip + (end - self._next) * self.up // self.down]
        if end is not None:
            self._next = end
            keep = self._next - self.margin
            self._buf, self._at = self._buf[keep - self._at :].copy(), keep
        return np.ascontiguousarray(y, dtype=np.float32)


class _ConsumerFailed(BaseException):
    """Carries the consumer's own exception through the decoders' `except Exception` fallbacks."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Feed:
    """The decoder's sink (`learner.audio.readers._Span`): file-rate mono blocks → Resampler → `on_samples`.

    When soundfile fails part way and PyAV starts again from frame 0, frames already passed on are skipped."""

    def __init__(
        self, label: str, sample_rate: int | None, on_samples: Callable[[np.ndarray], None], block: int
    ):
        self.label, self.target, self.on_samples, self.block = label, sample_rate, on_samples, block
        self.resampler: Resampler | None = None
        self.sr = self.fed = 0

    def __call__(self, span: object, frame: int, mono: np.ndarray) -> None:
        sr = int(span.sr)  # type: ignore[attr-defined]
        if self.resampler is None:
            self.sr, self.resampler = sr, Resampler(sr, self.target or sr, self.block)
        elif sr != self.sr:
            from learner.audio.errors import CorruptAudioError

            raise CorruptAudioError(
                self.label, f"its decoders disagree on the sample rate ({self.sr} vs {sr} Hz)"
            )
        if frame < self.fed:
            mono = mono[self.fed - frame :]
        if mono.size:
            self.fed += mono.size
            for y in self.resampler.push(mono):
                self._give(y)

    def finish(self) -> None:
        if self.resampler is not None:
            self._give(self.resampler.finish())

    def _give(self, y: np.ndarray) -> None:
        if y.size:
            try:
                self.on_samples(y)
            except BaseException as e:
                raise _ConsumerFailed(e) from e


def stream_decode(
    src: Source,
    sample_rate: int | None,
    on_samples: Callable[[np.ndarray], None],
    *,
    max_duration_s: float | None = None,
    max_bytes: int | None = None,
    name: str | None = None,
    block: int = StreamSizes.block,
) -> Decoded:
    """`decode(src, sample_rate, ...)` handing the samples to `on_samples` in consecutive blocks instead of
    returning them: same samples, errors (every one an `AudioDecodeError` naming the file), limits and
    truncation warning. Returns the `Decoded` facts with empty `samples`. A chained Ogg file is decoded
    link by link as `decode` does it, whole (not bounded)."""
    from learner.audio.decode import decode
    from learner.audio.errors import EmptyAudioError
    from learner.audio.header import ogg_is_chained, truncation_warning, wav_claimed_s
    from learner.audio.limits import check_samples
    from learner.audio.readers import SF_MAGIC, Read, decode_raw, prepare_source

    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    src, label, head = prepare_source(src, name, max_bytes)
    check_samples(label, src, head, SF_MAGIC, max_duration_s)
    if head[:4] == b"OggS" and ogg_is_chained(src):
        d = decode(src, sample_rate, max_duration_s=max_duration_s, name=label)
        on_samples(d.samples)
        return replace(d, samples=_EMPTY)
    feed = _Feed(label, sample_rate, on_samples, block)
    try:
        raw = decode_raw(Read(src, label, head, max_s=max_duration_s, sink=feed))
        if raw.span.kept == 0:
            raise EmptyAudioError(label, "no audio frames")
        feed.finish()
    except _ConsumerFailed as e:
        raise e.error from None
    seconds = feed.fed / feed.sr
    claimed = (wav_claimed_s(src) if head[:4] == b"RIFF" else None) or raw.header_s
    return Decoded(
        _EMPTY,
        sample_rate or feed.sr,
        feed.sr,
        raw.channels,
        seconds,
        raw.decoder,
        truncation_warning(claimed, seconds),
    )


class WindowStream:
    """The windows of `ClipPipeline.chunks(signal, plan, chunk)`, cut while the signal arrives in blocks.

    `push` yields each chunk (prepared windows, starts in seconds) once it is certain not to be the last
    (more than `plan.size + chunk · plan.hop` samples past its start have arrived); `finish` returns the
    last one, with the tail window aligned to the end. Memory: one chunk of signal plus its windows
    (`window_group`: a model batch of them).
    """

    def __init__(self, pipeline: ClipPipeline, plan: WindowPlan, chunk: int = StreamSizes.chunk) -> None:
        self.pipeline, self.plan, self.chunk = pipeline, plan, max(1, int(chunk))
        self._buf, self._at, self.n = _EMPTY, 0, 0  # held signal, where it starts, samples seen
        self._pending: list[np.ndarray] = []

    def push(self, x: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Take `x` (now, even if the chunks are never asked for) and return the chunks it completes."""
        self._pending.append(np.asarray(x, dtype=np.float32))
        self.n += x.size
        return self._cut()

    def _cut(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        size, hop = self.plan.size, self.plan.hop
        while self.n - self._at > size + self.chunk * hop:
            buf = self._held()
            yield self.pipeline.windows(buf[: (self.chunk - 1) * hop + size], self.plan, offset=self._at)
            self._buf, self._at = buf[self.chunk * hop :].copy(), self._at + self.chunk * hop

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        return self.pipeline.windows(self._held(), self.plan, offset=self._at)

    def _held(self) -> np.ndarray:
        if self._pending:
            self._buf = np.concatenate([self._buf, *self._pending])
            self._pending = []
        return self._buf
