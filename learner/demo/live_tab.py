"""The Live tab's widgets: the microphone streamed to a `LiveStream` per listener (learner/demo/live.py).

Streaming runs in its own Gradio queue (`concurrency_id="live"`, `LIVE_SLOTS` chunks at once), never in
the audio queue of the Classify and Events tabs nor in their short lane, so a listener cannot hold up an
upload; the model's share runs in the live lane's worker process (learner/demo/live_lane.py), and a stream
ends after `LIVE_TIME_LIMIT_S` of processing (press Record again). A chunk that completes no window (most:
the browser sends one every 0.1 s, a window comes every 0.25 s) changes nothing on the page and sends nothing
back.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from learner.demo.live import CHUNK_S, EVENT_COLUMNS, NOTHING, LiveStream, score_windows
from learner.demo.live_lane import LiveLane
from learner.demo.teach import Classroom
from learner.serve.predictor import Predictor

LIVE_SLOTS = 2  # chunks being scored at once, across listeners (the Space has 2 cores)
LIVE_TIME_LIMIT_S = 600  # processing seconds one stream may use
DEFAULT, TAUGHT = "the demo's model", "my model (Teach tab)"


def live_tab(predictor: Predictor, classroom: Classroom | None = None, lane: LiveLane | None = None) -> None:
    """Build the Live tab inside the current gr.Blocks; `lane` scores the windows (None: in the server)."""
    score = lane.submit if lane is not None else score_windows
    with gr.Tab("Live"):
        gr.Markdown(
            f"Press **Record**: every {CHUNK_S:g} s the last {predictor.cfg.duration:g} s window is "
            "classified. "
            f"{NOTHING} means none of the classes reached its threshold; events are listed once they end."
        )
        with gr.Row():
            with gr.Column():
                mic = gr.Audio(
                    sources=["microphone"], streaming=True, type="numpy", label="Microphone",
                    elem_id="earshot-live-mic",
                )  # fmt: skip
                which = gr.Radio(
                    [DEFAULT, TAUGHT], value=DEFAULT, label="model", visible=classroom is not None
                )
            with gr.Column():
                now = gr.Markdown(f"## {NOTHING}", elem_id="earshot-live-now")
                top = gr.Label(num_top_classes=5, label="last window", elem_id="earshot-live-top")
        timeline = gr.HTML(elem_id="earshot-live-timeline")
        events = gr.Dataframe(headers=EVENT_COLUMNS, label="events (as they close)", interactive=False)
        state = gr.State(None)

        def listen(chunk: Any, stream: LiveStream | None, chosen: str, request: gr.Request):
            p = predictor
            if chosen == TAUGHT and classroom is not None:
                teacher = classroom.peek(request.session_hash)
                if teacher is None or teacher.predictor is None:
                    raise gr.Error("teach a model first (Teach tab), or choose the demo's model", duration=8)
                p = teacher.predictor
            if stream is None or stream.predictor is not p:
                stream = LiveStream(p, score=score)
            if chunk is None:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), stream
            u = stream.push(*chunk)
            if not u.scored and stream.windows:  # no new window: the page stays as it is
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), stream
            rows = stream.events_rows() if u.closed or not stream.windows else gr.skip()
            return f"## {u.label}", u.top or gr.skip(), u.timeline_html, rows, stream

        mic.start_recording(lambda: None, None, state, api_name=False, queue=False)
        which.change(lambda: None, None, state, api_name=False, queue=False)
        mic.stream(
            listen, [mic, state, which], [now, top, timeline, events, state], stream_every=CHUNK_S,
            time_limit=LIVE_TIME_LIMIT_S, concurrency_id="live", concurrency_limit=LIVE_SLOTS,
            api_name="live", show_progress="hidden",
        )  # fmt: skip
