"""earshot's Gradio demo: upload or record a clip, see the top-5 labels, the log-mel the model saw, what
drove the prediction, and a per-window timeline for long recordings. Also a Hugging Face Space (README
front matter).

    python app.py [--model DIR_OR_USER/NAME[@rev]] [--backend auto|torch|onnx]
                  [--host 127.0.0.1] [--port 7860]

The model comes from `--model`, else `$EARSHOT_MODEL`, else the shipped speech-words model (ten command
words, trained on real speakers: assets/speech-words). Only widgets live here: see learner/demo/.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent  # the Space: assets/ and examples/ ship beside app.py
SHIPPED_MODEL = ROOT / "assets" / "speech-words"
EXAMPLES_DIR = ROOT / "examples"


def _args() -> argparse.Namespace | None:
    """Command-line flags, parsed before gradio is imported so that `--help` answers at once."""
    if __name__ != "__main__":
        return None
    from jobs._cli import add_backend_arg
    from jobs._cli import parser as new_parser

    p = new_parser("python app.py", __doc__)
    p.add_argument(
        "--model",
        default=None,
        help="model directory or Hub id USER/NAME[@revision] (default: $EARSHOT_MODEL, "
        "else the shipped speech-words model)",
    )
    add_backend_arg(p)
    p.add_argument(
        "--host", default=None, help="address to listen on (default: 127.0.0.1; $GRADIO_SERVER_NAME)"
    )
    p.add_argument("--port", type=int, default=None, help="port (default: 7860; $GRADIO_SERVER_PORT)")
    p.add_argument(
        "--short-workers",
        type=int,
        default=2,
        help="processes classifying short clips (0: threads of the server process; default 2)",
    )
    p.add_argument("--index", default=None, help="an `earshot embed` output: adds a Find similar tab")
    p.add_argument(
        "--review", default=None, help="a scoring run (with --windows) or search hits: a Review tab"
    )
    p.add_argument("--review-file", default=None, help="answers go here (default: RUN's stem + .review.csv)")
    return p.parse_args()


ARGS = _args()
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from an offline demo
# uploads and outputs in a folder of the demo's own, so its disk budget and sweeps touch no other Gradio app
os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(tempfile.gettempdir(), "earshot-gradio"))

import gradio as gr  # noqa: E402

from jobs._cli import as_flags  # noqa: E402
from learner.audio import DEMO_MAX_BYTES, DEMO_MAX_S, AudioDecodeError  # noqa: E402
from learner.demo import events as demo_events  # noqa: E402
from learner.demo.disk import DiskBudget, UploadBudget  # noqa: E402
from learner.demo.examples import example_files  # noqa: E402
from learner.demo.lanes import LaneError, Lanes  # noqa: E402
from learner.demo.live_lane import LiveLane  # noqa: E402
from learner.demo.live_tab import live_tab  # noqa: E402
from learner.demo.model_tab import confusion_html, model_info  # noqa: E402
from learner.demo.models import ServedModel, load_model  # noqa: E402
from learner.demo.teach import open_classroom  # noqa: E402
from learner.demo.teach_tab import teach_tab  # noqa: E402
from learner.folder import strip_local_paths  # noqa: E402

log = logging.getLogger("earshot.app")
# Tables in the Model tab: a setting name or value is one word (`sample_rate`, `timm/resnet18d.ra2_in1k`);
# keep each
# on one line and let a table that is too wide scroll instead of breaking words letter by letter.
MODEL_TAB_CSS = """
.earshot-model table { display: block; overflow-x: auto; max-width: 100%; }
.earshot-model td, .earshot-model th, .earshot-model code {
  white-space: nowrap; word-break: keep-all; overflow-wrap: normal;
}
"""


def _say(line: str) -> None:
    print(f"earshot: {as_flags(line)}", flush=True)


def _served() -> ServedModel:
    try:
        where = dict(log=_say, shipped=SHIPPED_MODEL)  # the demo serves models; it never trains one
        return load_model(ARGS.model, backend=ARGS.backend, **where) if ARGS else load_model(**where)
    except (RuntimeError, ValueError, OSError) as e:
        if __name__ == "__main__":  # a user running the app gets one line, not a traceback
            print(f"earshot: {as_flags(str(e))}", file=sys.stderr)
            sys.exit(1)
        raise


UPLOAD_CACHE_S = (600, 900)  # gr.Blocks(delete_cache=(every s, older than s))


class BudgetedBlocks(gr.Blocks):
    """gr.Blocks whose server admits uploads only within the demo's disk budget, however it is launched
    (`python app.py`, a Space, a test), and sweeps the cache at start and on a timer."""

    def __init__(self, disk: DiskBudget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.disk = disk

    def launch(self, *args: Any, app_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        from starlette.middleware import Middleware

        app_kwargs = dict(app_kwargs or {})
        budget = Middleware(UploadBudget, budget=self.disk)
        app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), budget]
        self.disk.start()
        return super().launch(*args, app_kwargs=app_kwargs, **kwargs)


def build_demo(served: ServedModel, lanes: Lanes | None = None) -> gr.Blocks:
    """The page for one loaded model (tests build it around their own model). Long uploads are read in a
    worker process of their own, one at a time, so they never hold up short ones (learner/demo/lanes.py)."""
    predictor = served.predictor
    lanes = lanes or Lanes(predictor)
    disk = DiskBudget.from_env()  # uploads and outputs, in total and per client (learner/demo/disk.py)
    # one queue for every audio request
    heavy = dict(concurrency_id="audio", concurrency_limit=lanes.gradio_slots)

    def run(path: str | None):
        try:
            top_k = len(predictor.classes) if demo_events.is_multi_label(predictor) else 5
            labels, spectrogram, saliency, timeline, message = lanes.run(
                "classify", path, top_k=top_k
            ).as_tuple()
            # multi-label: every label above its threshold
            labels = demo_events.labels_shown(predictor, labels)
            return (
                labels,
                spectrogram,
                saliency,
                gr.Plot(value=timeline, visible=timeline is not None, format="png"),
                message,
            )
        except (AudioDecodeError, ValueError, LaneError) as e:  # the input, or a busy long lane: say so
            raise gr.Error(str(e), duration=None, print_exception=False) from None
        except Exception as e:  # a bug: log it, tell the user, keep serving
            log.exception("classifying %s failed", path)
            name = os.path.basename(path or "")
            raise gr.Error(
                f"{name}: could not classify it ({type(e).__name__}: {e})", duration=None
            ) from None

    def run_events(path: str | None, threshold: float):
        try:
            return lanes.run("events", path, threshold, out_dir=str(disk.outputs)).as_tuple()
        except (AudioDecodeError, ValueError, LaneError) as e:
            raise gr.Error(str(e), duration=None, print_exception=False) from None
        except Exception as e:
            log.exception("finding events in %s failed", path)
            raise gr.Error(
                f"{os.path.basename(path or '')}: could not find events ({type(e).__name__}: {e})",
                duration=None,
            ) from None

    n = len(predictor.classes)
    shown = ", ".join(predictor.classes[:12]) + (" …" if n > 12 else "")
    # uploads (refused ones too) live in Gradio's temp folder: every 10 min, delete those older than 15 min
    with BudgetedBlocks(disk, title="earshot", analytics_enabled=False, delete_cache=UPLOAD_CACHE_S) as demo:
        words = [c for c in predictor.classes if c not in predictor.rejection.classes]  # not "unknown"
        invite = f"Say {', '.join(words[:-1])} or {words[-1]}." if 1 < len(words) <= 12 else ""
        gr.Markdown(
            f"# earshot · audio classifier\n`{strip_local_paths(predictor.model_id)}` · {predictor.arch} · "
            f"{n} classes: {shown}. {invite}"
        )
        with gr.Tab("Classify"):
            with gr.Row():
                with gr.Column() as left:
                    audio = gr.Audio(
                        sources=["upload", "microphone"], type="filepath", label="Upload or record"
                    )
                    button = gr.Button("Classify", variant="primary")
                    gr.Markdown(
                        f"Any common audio format, up to {DEMO_MAX_S / 60:g} min; inputs longer than twice "
                        f"the {predictor.cfg.duration:g} s clip are scored in windows."
                    )
                with gr.Column():
                    labels = gr.Label(num_top_classes=5, label="Top 5")
                    message = gr.Markdown(label="message")
            with gr.Row():
                # PNG, not Gradio's default WebP: encoding two figures costs 0.23 s of CPU instead of 0.35 s
                spectrogram = gr.Plot(label="spectrogram", show_label=False, format="png")
                saliency = gr.Plot(label="where the model listened", show_label=False, format="png")
            timeline = gr.Plot(label="timeline", show_label=False, visible=False, format="png")
            outputs = [labels, spectrogram, saliency, timeline, message]
            examples = example_files(predictor.classes, EXAMPLES_DIR)
            if examples:
                with left:  # beside the input, so they are in view
                    gr.Examples(
                        [[e] for e in examples],
                        inputs=[audio],
                        outputs=outputs,
                        fn=run,
                        run_on_click=True,
                        cache_examples=False,
                        label="Examples",
                    )
        with gr.Tab("Events"):  # long recordings → timestamped events (learner/demo/events.py)
            with gr.Row():
                with gr.Column():
                    ev_audio = gr.Audio(
                        sources=["upload", "microphone"], type="filepath", label="A long recording"
                    )
                    ev_threshold = gr.Slider(
                        0.05,
                        0.95,
                        value=demo_events.default_threshold(predictor),
                        step=0.01,
                        label="event threshold (every class)",
                    )
                    ev_button = gr.Button("Find events", variant="primary")
                with gr.Column():
                    ev_message = gr.Markdown()
                    ev_csv = gr.File(label="events (CSV)")
            ev_plot = gr.Plot(label="events on the timeline", show_label=False, format="png")
            ev_table = gr.Dataframe(headers=demo_events.TABLE_COLUMNS, label="events", interactive=False)
            ev_outputs = [ev_table, ev_plot, ev_csv, ev_message]
            ev_button.click(run_events, [ev_audio, ev_threshold], ev_outputs, api_name="events", **heavy)
            ev_threshold.release(run_events, [ev_audio, ev_threshold], ev_outputs, api_name=False, **heavy)
        classroom = open_classroom(disk.outputs / "teach")  # None when the backbone cannot load
        # the microphone, streamed (learner/demo/live.py); its windows scored in the live lane's worker
        live_tab(predictor, classroom, LiveLane(lanes.live_worker))
        if classroom is not None:
            teach_tab(classroom)  # a model of your own sounds, per session (learner/demo/teach.py)
        if ARGS and ARGS.index:
            _similar_tab(ARGS.index)
        if ARGS and ARGS.review:  # learner/demo/review.py
            from learner.demo.review import review_tab

            review_tab(ARGS.review, ARGS.review_file, predictor.cfg, predictor.classes)
        with gr.Tab("Model", elem_classes=["earshot-model"]):
            # applies however it is launched
            gr.HTML(f"<style>{MODEL_TAB_CSS}</style>", padding=False, container=False)
            info = model_info(predictor, served.folder)
            with gr.Row():
                with gr.Column(scale=3):
                    gr.Markdown(info.summary)
                with gr.Column(scale=2):
                    if info.confusion_png:  # inline bytes: no file route, no server path in /config
                        gr.HTML(confusion_html(info.confusion_png), label="Confusion matrix (validation)")
            with gr.Row():  # settings tables side by side at half width each; cells never wrap inside a word
                gr.Markdown(info.audio)
                gr.Markdown(info.training)
        button.click(run, audio, outputs, api_name="classify", **heavy)
        audio.upload(run, audio, outputs, api_name=False, **heavy)
        audio.stop_recording(run, audio, outputs, api_name=False, **heavy)
    demo.queue(default_concurrency_limit=2, max_size=64)
    demo.lanes = lanes  # tests and app.py's main reach the long lane's worker here
    demo.classroom = classroom  # the Teach tab's sessions (tests look inside)
    launch = demo.launch

    def launch_saying_errors(*args, show_error: bool = True, **kwargs):
        """A refused request (a path the server never handed out, missing inputs) says why, never
        `{"error": null}`; our own handlers already turn every failure into one line (gr.Error)."""
        return launch(*args, show_error=show_error, **kwargs)

    demo.launch = launch_saying_errors
    return demo


def _similar_tab(parquet: str) -> None:
    """Find similar: a clip → the nearest windows of an embedded folder (learner/demo/similar.py)."""
    from learner.demo import similar

    sim = similar.open_similar(parquet)
    with gr.Tab("Find similar"):
        query = gr.Audio(sources=["upload", "microphone"], type="numpy", label="A clip to look for")
        table = gr.Dataframe(
            headers=similar.COLUMNS, label=f"nearest windows in {parquet}", interactive=False
        )
        players = [gr.Audio(label=f"hit {i + 1}", interactive=False) for i in range(similar.PLAYERS)]
        query.change(lambda clip: similar.outputs(sim, clip), query, [table, *players], api_name="similar")


served = _served()
# run as a server (`python app.py`, as on a Space): short clips in worker processes too, not threads sharing
# the GIL
demo = build_demo(served, Lanes(served.predictor, short_workers=ARGS.short_workers) if ARGS else None)

if __name__ == "__main__":
    demo.lanes.warm()  # the workers load the model now, not on the first uploads
    demo.launch(server_name=ARGS.host, server_port=ARGS.port, max_file_size=DEMO_MAX_BYTES)
