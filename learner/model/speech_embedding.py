"""Google's `speech_embedding` (Apache-2.0) as an ONNX feature graph: waveform → 96 values per 0.775 s.

The network (Lin et al., ICASSP 2020: a conv stack Google trained on a large speech corpus to embed words) is
published as two ONNX files inside the PyPI wheel `openwakeword==0.4.0`: `melspectrogram.onnx` (int16-scaled
16 kHz audio → 32 log-mel bands every 10 ms) and `embedding_model.onnx` (76 mel frames → 96 values). Only
those two are read: the same wheel's wake-word models are CC BY-NC-SA and are never touched.

`feature_graph` rebuilds the mel step from the published file's own weights (STFT kernels and mel matrix) with
one change: the published graph clips each spectrogram 80 dB below the maximum of the *whole batch*, which
couples clips scored together; here it is each clip's own maximum (equal for one clip, tested). It then cuts
the 76-frame windows (hop 8 frames, 80 ms) and runs the published embedding network on all of them (in one
pass over the spectrogram: see the comment in `feature_graph`), so one graph maps a batch of clips
(B, n_samples) to (B, windows · 96). A clip is padded with silence on both sides first, so a word at the
very edge of a 1 s clip is still inside some window. No torch here: numpy and onnx.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from learner.model.backbone_registry import WeightsSource

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame (10 ms), the published STFT's stride
N_FFT = 512
WINDOW_FRAMES = 76  # mel frames per embedding (0.775 s)
WINDOW_HOP = 8  # frames between embeddings (80 ms), as openWakeWord streams them
EMB_DIM = 96
TOP_DB = 80.0
INT16 = 32767.0  # the network was trained on int16-scaled samples
PAD_S = 0.25  # silence each side of a clip: a 1 s clip gives 9 embeddings, not 3
OPSET = 17

_WHEEL = "openwakeword==0.4.0"
_HOW = (
    "the speech_embedding network ships in the PyPI wheel openwakeword==0.4.0 (pip download --no-deps "
    "openwakeword==0.4.0); earshot fetches that wheel once with the network"
)


def _published(name: str, sha256: str) -> WeightsSource:
    """One of the wheel's two files, kept in earshot's cache as speech_embedding-NAME."""
    member = f"openwakeword/resources/models/{name}"
    return WeightsSource(f"speech_embedding-{name}", sha256, package=_WHEEL, member=member, how=_HOW)


MEL_WEIGHTS = _published(
    "melspectrogram.onnx", "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f"
)
EMBEDDING_WEIGHTS = _published(
    "embedding_model.onnx", "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51"
)
LICENCE = "Apache-2.0 (Google's speech_embedding, as ONNX in openWakeWord 0.4.0 by David Scripka)"
CITATION = (
    'James Lin, Kevin Kilgour, Dominik Roblek and Matthew Sharifi, "Training Keyword Spotters with Limited '
    'and Synthesized Speech Data", Proc. ICASSP 2020, pp. 7474-7478.'
)


def published_files() -> tuple[Path, Path]:
    """The two published ONNX files (the wheel fetched once into earshot's cache, each file checked by
    sha256); one line saying how to get them when offline."""
    from learner.model.backbone_weights import wheel_file

    return wheel_file(MEL_WEIGHTS, "speech_embedding"), wheel_file(EMBEDDING_WEIGHTS, "speech_embedding")


def n_windows(n_samples: int, pad_s: float = PAD_S) -> int:
    """Embeddings per clip of `n_samples` after `pad_s` seconds of silence on each side."""
    frames = (n_samples + 2 * round(pad_s * SAMPLE_RATE) - N_FFT) // HOP + 1
    if frames < WINDOW_FRAMES:
        raise ValueError(f"speech_embedding needs ≥ {WINDOW_FRAMES} mel frames, a padded clip gives {frames}")
    return (frames - WINDOW_FRAMES) // WINDOW_HOP + 1


def feature_graph(n_samples: int, mel_file: Path, embedding_file: Path, left_s: float = PAD_S,
                  right_s: float | None = None, prefix: str = "se/"):  # fmt: skip
    """An ONNX model: "waveform" (B, n_samples) → "features" (B, n_windows · 96). `left_s`/`right_s` place the
    clip in its padding (their sum fixed at 2·PAD_S, so every placement gives the same windows)."""
    import onnx
    from onnx import helper, numpy_helper

    right_s = 2 * PAD_S - left_s if right_s is None else right_s
    left, right = round(left_s * SAMPLE_RATE), round(right_s * SAMPLE_RATE)
    n_win = n_windows(n_samples, (left_s + right_s) / 2)
    frames = (n_samples + left + right - N_FFT) // HOP + 1
    front_nodes, front_inits = _front_end(prefix, left, right, onnx.load(str(mel_file)))
    net_nodes, net_inits, net_out = _network(prefix, frames, onnx.load(str(embedding_file)), embedding_file)
    n, p = helper.make_node, prefix
    tail = [n("Transpose", [net_out], [p + "by_window"], perm=[0, 2, 1, 3]),  # (B, windows, 96, 1)
            n("Reshape", [p + "by_window", p + "out_shape"], ["features"])]  # fmt: skip
    out_shape = numpy_helper.from_array(np.array([-1, n_win * EMB_DIM], np.int64), p + "out_shape")
    graph = helper.make_graph(
        front_nodes + net_nodes + tail,
        "speech_embedding_features",
        [helper.make_tensor_value_info("waveform", onnx.TensorProto.FLOAT, ["batch", n_samples])],
        [helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, ["batch", n_win * EMB_DIM])],
        front_inits + net_inits + [out_shape],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def _front_end(p: str, left: int, right: int, mel_model) -> tuple[list, list]:
    """"waveform" → p + "spec" (B, frames, 32, 1): padding, int16 scale, the published STFT kernels and mel
    matrix, dB floored 80 dB below each clip's own peak, openWakeWord's scaling (x / 10 + 2)."""
    from onnx import helper, numpy_helper

    mel = {i.name: numpy_helper.to_array(i) for i in mel_model.graph.initializer}
    consts = {
        "pads": np.array([0, left, 0, right], np.int64),
        "zero": np.array(0.0, np.float32),
        "int16": np.array(INT16, np.float32),
        "axis1": np.array([1], np.int64),
        "stft_re": mel["0.stft.conv_real.weight"],
        "stft_im": mel["0.stft.conv_imag.weight"],
        "mel_w": mel["1.melW"],
        "floor": np.array(1e-10, np.float32),
        "db": np.array(10.0 / math.log(10.0), np.float32),
        "top_db": np.array(TOP_DB, np.float32),
        "ten": np.array(10.0, np.float32),
        "two": np.array(2.0, np.float32),
        "axis3": np.array([3], np.int64),
    }
    n = helper.make_node
    nodes = [
        n("Pad", ["waveform", p + "pads", p + "zero"], [p + "padded"]),
        n("Mul", [p + "padded", p + "int16"], [p + "scaled"]),
        n("Unsqueeze", [p + "scaled", p + "axis1"], [p + "x"]),
        n("Conv", [p + "x", p + "stft_re"], [p + "re"], strides=[HOP], kernel_shape=[N_FFT]),
        n("Conv", [p + "x", p + "stft_im"], [p + "im"], strides=[HOP], kernel_shape=[N_FFT]),
        n("Mul", [p + "re", p + "re"], [p + "re2"]),
        n("Mul", [p + "im", p + "im"], [p + "im2"]),
        n("Add", [p + "re2", p + "im2"], [p + "power"]),
        n("Transpose", [p + "power"], [p + "power_t"], perm=[0, 2, 1]),  # (B, frames, 257)
        n("MatMul", [p + "power_t", p + "mel_w"], [p + "mel"]),
        n("Max", [p + "mel", p + "floor"], [p + "mel_floor"]),
        n("Log", [p + "mel_floor"], [p + "ln"]),
        n("Mul", [p + "ln", p + "db"], [p + "dB"]),
        n("ReduceMax", [p + "dB"], [p + "peak"], axes=[1, 2], keepdims=1),  # each clip's own peak
        n("Sub", [p + "peak", p + "top_db"], [p + "low"]),
        n("Max", [p + "dB", p + "low"], [p + "clipped"]),
        n("Div", [p + "clipped", p + "ten"], [p + "tenth"]),
        n("Add", [p + "tenth", p + "two"], [p + "scaled_spec"]),
        n("Unsqueeze", [p + "scaled_spec", p + "axis3"], [p + "spec"]),  # NHWC with one channel
    ]
    return nodes, [numpy_helper.from_array(v, p + k) for k, v in consts.items()]


def _network(p: str, frames: int, emb, embedding_file: Path) -> tuple[list, list, str]:
    """The published network's nodes and weights, reading p + "spec"; returns the name of its (B, 96,
    windows, 1) output.

    The network is a stack of time-valid convolutions whose time pooling strides multiply to 8 = WINDOW_HOP,
    so one pass over the whole spectrogram gives the embedding of every 76-frame window at hop 8 (equal to
    cutting the windows first, tested; 4.6× less work for a 1 s clip). Only its two reshapes name the window
    length: the first is given the whole length, the last (which would merge the windows) is dropped."""
    import onnx
    from onnx import numpy_helper

    (emb_in,) = [i.name for i in emb.graph.input]
    *body, last = emb.graph.node
    if last.op_type != "Reshape" or len(body) < 2 or body[1].op_type != "Reshape":
        raise ValueError(f"{embedding_file}: not the published speech_embedding graph (its reshapes moved)")
    first_shape = body[1].input[1]

    def rename(name: str) -> str:
        return p + "spec" if name == emb_in else (p + "net/" + name if name else name)

    nodes, inits = [], []
    for node in body:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = p + "net/" + node.name
        copy.input[:] = [rename(x) for x in node.input]
        copy.output[:] = [rename(x) for x in node.output]
        nodes.append(copy)
    for init in emb.graph.initializer:
        if init.name == last.input[1]:
            continue
        if init.name == first_shape:
            init = numpy_helper.from_array(np.array([-1, 1, frames, 34], np.int64), init.name)
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = p + "net/" + init.name
        inits.append(copy)
    return nodes, inits, rename(last.input[0])


def with_linear_head(features, weight: np.ndarray, bias: np.ndarray, mean: np.ndarray | None = None,
                     scale: np.ndarray | None = None, l2: bool = False):  # fmt: skip
    """`feature_graph` + a linear head: "waveform" → "logits" (B, classes); weight (dim, classes). With
    `mean`/`scale` the features are standardised first, and with `l2` L2-normalised before that (the frame
    of `learner.model.head_fit.HeadFit`)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(features)
    g = model.graph
    tensors = {"weight": weight, "bias": bias, "eps": np.array(1e-12)}
    tensors |= {"mean": mean, "scale": scale} if mean is not None and scale is not None else {}
    g.initializer.extend(numpy_helper.from_array(np.asarray(v, np.float32), f"head/{k}")
                         for k, v in tensors.items())  # fmt: skip
    n, x = helper.make_node, "features"
    if l2:
        g.node.extend([n("ReduceL2", [x], ["head/norm"], axes=[1], keepdims=1),
                       n("Max", ["head/norm", "head/eps"], ["head/norm_floor"]),
                       n("Div", [x, "head/norm_floor"], ["head/unit"])])  # fmt: skip
        x = "head/unit"
    if "mean" in tensors:
        g.node.extend([n("Sub", [x, "head/mean"], ["head/centred"]),
                       n("Div", ["head/centred", "head/scale"], ["head/standard"])])  # fmt: skip
        x = "head/standard"
    g.node.extend([n("MatMul", [x, "head/weight"], ["head/scores"]),
                   n("Add", ["head/scores", "head/bias"], ["logits"])])  # fmt: skip
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", len(bias)]))
    onnx.checker.check_model(model)
    return model
