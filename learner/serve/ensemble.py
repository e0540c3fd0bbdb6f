"""Several exported models as one ONNX graph that averages their class probabilities.

Each member is a graph "waveform" (B, n_samples) → "logits" (B, classes) over the same classes in the same
order (an `jobs.export` file, or `learner.model.speech_embedding.with_linear_head`). The result is again a
"waveform" → "logits" graph, whose logits are the log of the weighted mean of the members' softmax: the
Predictor's softmax gives back exactly that mean, so thresholds, rejection, live mode and every backend that
reads an ONNX file treat an ensemble like any exported model. Only numpy and onnx are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

INPUT, OUTPUT = "waveform", "logits"
FLOOR = 1e-12  # the smallest mean probability kept before the log (no -inf logits)


def _width(model) -> int | str:
    dims = model.graph.output[0].type.tensor_type.shape.dim
    return dims[-1].dim_value or dims[-1].dim_param


def _check_member(i: int, model) -> None:
    g = model.graph
    if [x.name for x in g.input] != [INPUT] or [x.name for x in g.output] != [OUTPUT]:
        raise ValueError(
            f"ensemble member {i}: takes {[x.name for x in g.input]} and gives {[x.name for x in g.output]}; "
            f"every member must map {INPUT!r} to {OUTPUT!r} (an exported earshot model)"
        )
    if any(a.type in (a.GRAPH, a.GRAPHS) for node in g.node for a in node.attribute):
        raise ValueError(f"ensemble member {i}: control-flow subgraphs are not supported")


def average(members: Sequence, weights: Sequence[float] | None = None, name: str = "earshot_ensemble"):
    """One ONNX model whose "logits" are log(Σ wᵢ · softmax(memberᵢ)), wᵢ summing to 1 (equal by default)."""
    import onnx
    from onnx import compose, helper, numpy_helper

    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    w = np.full(len(members), 1 / len(members)) if weights is None else np.asarray(weights, np.float64)
    if len(w) != len(members) or (w <= 0).any():
        raise ValueError(f"ensemble weights must be {len(members)} positive numbers, got {list(w)}")
    w = w / w.sum()
    widths = {_width(m) for m in members}
    if len({x for x in widths if isinstance(x, int)}) > 1:
        raise ValueError(f"ensemble members give different numbers of classes: {sorted(map(str, widths))}")
    nodes, inits, opsets = [], [], {}
    for i, model in enumerate(members):
        _check_member(i, model)
        tagged = compose.add_prefix(model, f"m{i}/", rename_inputs=False)
        nodes.extend(tagged.graph.node)
        inits.extend(tagged.graph.initializer)
        for op in model.opset_import:
            opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
        inits.append(numpy_helper.from_array(np.array(w[i], np.float32), f"ensemble/w{i}"))
        nodes.append(helper.make_node("Softmax", [f"m{i}/{OUTPUT}"], [f"ensemble/p{i}"], axis=-1))
        nodes.append(helper.make_node("Mul", [f"ensemble/p{i}", f"ensemble/w{i}"], [f"ensemble/wp{i}"]))
    inits.append(numpy_helper.from_array(np.array(FLOOR, np.float32), "ensemble/floor"))
    nodes.append(helper.make_node("Sum", [f"ensemble/wp{i}" for i in range(len(members))], ["ensemble/p"]))
    nodes.append(helper.make_node("Max", ["ensemble/p", "ensemble/floor"], ["ensemble/p_floor"]))
    nodes.append(helper.make_node("Log", ["ensemble/p_floor"], [OUTPUT]))
    width = next(iter(widths))
    waveform = onnx.ValueInfoProto()
    waveform.CopyFrom(members[0].graph.input[0])
    graph = helper.make_graph(
        nodes,
        name,
        [waveform],
        [helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["batch", width])],
        inits,
    )
    opset_imports = [helper.make_opsetid(d, v) for d, v in sorted(opsets.items())]
    model = helper.make_model(graph, opset_imports=opset_imports, ir_version=members[0].ir_version)
    onnx.checker.check_model(model)
    return model


def average_into(folder: Path, others: Sequence, weights: Sequence[float] | None = None,
                 record: dict[str, Any] | None = None) -> list[str]:  # fmt: skip
    """Make each exported file of a model folder (model.onnx, model.int8.onnx) the average of itself and
    `others` (its weight first), and record it in config.json: the new sha256 (a file not averaged, or
    recorded but absent, is no longer listed, so it is never served) and an "ensemble" record (`record`,
    plus the weights). Returns the files written. A folder that is an ensemble already is refused (average
    the members once)."""
    import onnx

    from learner.folder import ModelConfig, ModelDirError
    from learner.serve.onnx_backend import INT8_FILE, ONNX_FILE, sha256_file

    folder = Path(folder)
    config = ModelConfig.read(folder)
    if (config.onnx or {}).get("ensemble"):
        raise ModelDirError(f"{folder}: its ONNX files are an ensemble already; average the members once")
    recorded = (config.onnx or {}).get("files", {})
    names = [n for n in (ONNX_FILE, INT8_FILE) if n in recorded and (folder / n).is_file()]
    if not names:
        raise ModelDirError(f"{folder}: no exported ONNX file in config.json; export the model first")
    files = {}
    for name in names:
        merged = average([onnx.load(str(folder / name)), *others], weights)
        onnx.save(merged, str(folder / name))
        files[name] = sha256_file(folder / name)
    w = [1 / (1 + len(others))] * (1 + len(others)) if weights is None else list(weights)
    config.onnx = {**config.onnx, "files": files, "ensemble": {**(record or {}), "weights": w}}
    config.write(folder)
    return names


def member(model, i: int):
    """Member `i` of an `average` graph again as a "waveform" → "logits" graph (its nodes and weights
    unchanged): how a shipped ensemble is rebuilt from the member it was built on."""
    import onnx
    from onnx import helper

    prefix = f"m{i}/"
    nodes = [n for n in model.graph.node if any(o.startswith(prefix) for o in n.output)]
    if not nodes:
        raise ValueError(f"no ensemble member {i} in this graph (no {prefix}… nodes); is it an ensemble?")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    del g.node[:]
    g.node.extend(nodes)
    for node in g.node:
        node.output[:] = [OUTPUT if o == prefix + OUTPUT else o for o in node.output]
    used = {x for n in g.node for x in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["batch", _width(model)]))
    onnx.checker.check_model(out)
    return out
