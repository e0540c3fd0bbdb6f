"""The Teach tab's widgets: name classes, record or upload takes, Train, try it, download or push it.

The logic is `learner.demo.teach` (a `Teacher` per browser session, from a bounded `Classroom`); the
taught model is also what the Live tab uses when "my model" is chosen. Its own Gradio queue (`teach`),
never the audio queue of the Classify tab.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from learner.audio import AudioDecodeError
from learner.demo.teach import MIN_EXAMPLES, SUGGESTED, Classroom, TeachError
from learner.hub import HubError

TEACH_SLOTS = 2
TRY_MAX_S = 30.0


def _counts_md(counts: dict[str, int]) -> str:
    if not counts:
        return "no classes yet"
    cells = " · ".join(f"**{c}**: {n}" + (" ✓" if n >= MIN_EXAMPLES else "") for c, n in counts.items())
    return f"examples — {cells} (at least {MIN_EXAMPLES} each)"


class TeachHandlers:
    """What the Teach tab's events do, for one Classroom (each call finds the caller's own Teacher)."""

    def __init__(self, classroom: Classroom) -> None:
        self.classroom = classroom

    def on_names(self, text: str, request: gr.Request):
        try:
            classes = self.classroom.get(request.session_hash).set_classes(text)
        except TeachError as e:
            raise gr.Error(str(e), duration=8, print_exception=False) from None
        t = self.classroom.get(request.session_hash)
        return gr.Dropdown(choices=classes, value=classes[0]), _counts_md(t.counts())

    def on_take(self, clip: Any, which: str | None, request: gr.Request):
        if clip is None:
            return gr.skip(), gr.skip()
        t = self.classroom.get(request.session_hash)
        try:
            t.add_example(which or "", clip)
        except (TeachError, AudioDecodeError) as e:
            raise gr.Error(str(e), duration=8, print_exception=False) from None
        return None, _counts_md(t.counts())

    def on_train(self, request: gr.Request, progress=gr.Progress()):
        t = self.classroom.get(request.session_hash)
        try:
            r = t.train(lambda f, m: progress(f, desc=m))
        except TeachError as e:
            raise gr.Error(str(e), duration=8, print_exception=False) from None
        acc = "" if r.inner_cv_accuracy is None else f", {r.inner_cv_accuracy:.0%} right in cross-validation"
        cv = r.cross_validation or {}
        others = [f"{k} {v:.0%}" for k, v in cv.items() if k != r.backbone and v is not None]
        vs = f" (against {', '.join(others)})" if others else ""
        return (
            f"trained **{', '.join(r.predictor.classes)}** in {r.seconds:.1f} s on the `{r.backbone}` "
            f"backbone{acc}{vs}: try it below or in Live"
        )

    def on_try(self, path: str | None, request: gr.Request):
        t = self.classroom.peek(request.session_hash)
        if t is None or t.predictor is None:
            raise gr.Error("train a model first", duration=8)
        if path is None:
            return gr.skip()
        try:
            return t.predictor.predict(path, top_k=5, max_duration_s=TRY_MAX_S).as_dict()
        except (AudioDecodeError, ValueError) as e:
            raise gr.Error(str(e), duration=8, print_exception=False) from None

    def on_download(self, request: gr.Request):
        try:
            return str(self.classroom.get(request.session_hash).zip())
        except TeachError as e:
            raise gr.Error(str(e), duration=8, print_exception=False) from None

    def on_push(self, repo_id: str, hub_token: str, request: gr.Request):
        try:
            return f"pushed: {self.classroom.get(request.session_hash).push(repo_id, hub_token)}"
        except (TeachError, HubError) as e:
            return f"not pushed: {e}"


def teach_tab(classroom: Classroom) -> None:
    """Build the Teach tab inside the current gr.Blocks."""
    on = TeachHandlers(classroom)
    q = dict(concurrency_id="teach", concurrency_limit=TEACH_SLOTS, api_name=False)
    with gr.Tab("Teach"):
        gr.Markdown(
            "Teach it your sounds: name 2–10 classes (keep a **background** class: record room noise or "
            f"silence), record at least {MIN_EXAMPLES} takes of each (each take is added when you stop), "
            "then Train. Sounds (claps, whistles) and spoken words both work: Train keeps the backbone that "
            "recognises your takes best. Your model is yours alone and lasts this session; download it to "
            "keep it."
        )
        with gr.Row():
            names = gr.Textbox(SUGGESTED, label="classes (comma separated)", elem_id="earshot-teach-names")
            set_names = gr.Button("Set classes", elem_id="earshot-teach-set")
        with gr.Row():
            with gr.Column():
                label = gr.Dropdown([], label="this take is an example of", elem_id="earshot-teach-label")
                take = gr.Audio(
                    sources=["microphone", "upload"],
                    type="numpy",
                    label="a take",
                    elem_id="earshot-teach-take",
                )
                counts = gr.Markdown("no classes yet", elem_id="earshot-teach-counts")
            with gr.Column():
                train = gr.Button("Train", variant="primary", elem_id="earshot-teach-train")
                status = gr.Markdown(elem_id="earshot-teach-status")
                tryit = gr.Audio(sources=["upload", "microphone"], type="filepath", label="try it: a clip")
                tried = gr.Label(num_top_classes=5, label="your model says", elem_id="earshot-teach-tried")
        with gr.Row():
            download = gr.Button("Download the model (zip)")
            zipped = gr.File(label="model folder (zip)", interactive=False)
        with gr.Row():
            repo = gr.Textbox(label="Hub repo (USER/NAME)")
            token = gr.Textbox(label="Hub token (write)", type="password")
            push = gr.Button("Push to the Hub")
        pushed = gr.Markdown()

        set_names.click(on.on_names, names, [label, counts], **q)
        names.submit(on.on_names, names, [label, counts], **q)
        take.stop_recording(on.on_take, [take, label], [take, counts], **q)
        take.upload(on.on_take, [take, label], [take, counts], **q)
        train.click(on.on_train, None, status, **q)
        tryit.change(on.on_try, tryit, tried, **q)
        download.click(on.on_download, None, zipped, **q)
        push.click(on.on_push, [repo, token], pushed, **q)
