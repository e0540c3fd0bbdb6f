"""Export a model to ONNX for torch-free serving: adds model.onnx (and model.int8.onnx) to the model
directory.

    python -m jobs.export --model DIR|USER/NAME[@rev] [--int8] [--opset N] [--out DIR] [--calib DIR]

The graph takes fixed-length mono waveforms (batch, samples) at the model's sample rate and contains the
front end, so `Predictor.from_dir(DIR)` then serves it with ONNX Runtime alone (requirements-serve.txt).
A Hub id (or --out) exports into a local copy of the model directory.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path

from jobs._cli import add_quiet_arg, run
from jobs._cli import parser as new_parser


def parser() -> argparse.ArgumentParser:
    p = new_parser("python -m jobs.export", __doc__)
    p.add_argument("--model", required=True, help="model directory or Hub id USER/NAME[@revision]")
    p.add_argument(
        "--int8", action="store_true", help="also write model.int8.onnx (ONNX Runtime quantization)"
    )
    p.add_argument(
        "--int8-method",
        default="static",
        choices=["static", "dynamic"],
        help="static = QDQ with calibration (fast on conv nets, the default); dynamic = no calibration",
    )
    p.add_argument(
        "--calib",
        default=None,
        metavar="DIR",
        help="audio files to calibrate int8 on (default: generated clips); real clips calibrate better",
    )
    p.add_argument("--n-calib", type=int, default=128, help="calibration clips drawn from --calib")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    p.add_argument(
        "--out",
        "--output",
        dest="out",
        default=None,
        metavar="DIR",
        help="export into a copy of the model here (required for a Hub id: default models/NAME)",
    )
    add_quiet_arg(p, "print only warnings and errors")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from learner.hub import resolve
    from learner.serve.export import DEFAULT_OPSET, calibration_clips, check_writable, export_model_dir

    src = resolve(args.model)
    local = Path(args.model).exists()
    folder = src
    if args.out or not local:
        folder = Path(args.out or Path("models") / args.model.split("@")[0].split("/")[-1])
        if folder.exists():
            raise FileExistsError(
                f"{folder} already exists; pass --model {folder} to export there, or another --out"
            )
        shutil.copytree(src, folder, ignore=shutil.ignore_patterns("*.onnx", ".export-*"))
        print(f"earshot: copied {args.model} to {folder}")
    check_writable(folder)
    calib = None
    if args.int8 and args.calib:
        with warnings.catch_warnings(record=True) as skipped:
            warnings.simplefilter("always")
            calib = calibration_clips(folder, args.calib, args.n_calib)
        for w in skipped:
            print(f"earshot: warning: {w.message}", file=sys.stderr)
    rec = export_model_dir(
        folder, int8=args.int8, opset=args.opset or DEFAULT_OPSET, int8_method=args.int8_method, calib=calib
    )
    for name in rec["files"]:
        size = (folder / name).stat().st_size / 2**20
        if not args.quiet:
            print(f"earshot: wrote {folder / name} ({size:.1f} MB)")
    if not args.quiet:
        print(
            f"earshot: torch vs ONNX max |Δp| = {rec['parity']['max_abs_prob_diff']:.1e} on "
            f"{rec['parity']['clips']} "
            "generated clips"
        )
    if "int8" in rec:
        i8 = rec["int8"]
        given = i8["agreement_on"] == "given"
        advice = (
            "serve model.onnx (fp32) instead"
            if given
            else "calibrate on real clips (--calib DIR) or serve fp32"
        )
        print(
            f"earshot: int8 top-1 agreement with float32 {i8['top1_agreement']:.1%} on "
            f"{i8['agreement_clips']} "
            f"{'of your calibration clips' if given else 'generated clips'}"
            + ("" if i8["top1_agreement"] >= 0.99 else f" — below 99 %: {advice}")
        )
    return 0


if __name__ == "__main__":
    run(main)
