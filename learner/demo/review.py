"""The Review tab: candidates of a scoring run or a search, one at a time (log-mel and audio of the window
with some context), answered with the keyboard: y yes, n no, o other (the label chosen beside it),
u unsure, z or Backspace undo. Each answer is appended to the review file (learner/data/review.py) before
the next window is shown, so a server killed mid-review has lost nothing answered; starting again picks
only windows not answered yet, by any reviewer.

    python app.py --model MODEL --review scores.parquet [--review-file scores.review.csv]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from learner.config import AudioConfig
from learner.data.review import Candidate, append_answer, default_review_file, read_review
from learner.score.picks import PICKS, load_candidates, pick

CONTEXT_S = 1.0  # seconds shown and played before and after the window
BUTTONS = {"yes": "y", "no": "n", "other": "o", "unsure": "u", "undo": "z"}
# One listener for the page (set once even if the tab is built twice): a key clicks the button of the same
# answer, only while the Review tab is on screen and not while typing in a field.
KEYS_JS = """
if (!window.earshotReviewKeys) {
  window.earshotReviewKeys = true;
  const keys = {y: 'review-yes', n: 'review-no', o: 'review-other', u: 'review-unsure', z: 'review-undo',
                Backspace: 'review-undo'};
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    const id = keys[e.key.length === 1 ? e.key.toLowerCase() : e.key];
    const panel = document.getElementById('review-answers');
    if (!id || !panel || panel.offsetParent === null) return;
    const button = document.getElementById(id);
    if (!button || button.disabled) return;
    e.preventDefault();
    button.click();
  });
}
"""


@dataclass
class Session:
    """One reviewer's queue: candidates[:i] are answered (in this session), candidates[i] is shown."""

    candidates: list[dict] = field(default_factory=list)
    i: int = 0

    @property
    def current(self) -> Candidate | None:
        return Candidate(**self.candidates[self.i]) if self.i < len(self.candidates) else None


class Reviewer:
    """The tab's logic without widgets: start a queue, answer, undo, and draw the window shown."""

    def __init__(self, source: str | Path, review_file: str | Path, cfg: AudioConfig, classes: list[str]):
        self.table = load_candidates(source)
        self.review_file = Path(review_file)
        self.cfg, self.classes = cfg, list(classes)

    def answered(self) -> list[tuple]:
        if not self.review_file.exists():
            return []
        done = read_review(self.review_file)
        return list(done[["path", "start_s", "end_s", "label"]].itertuples(index=False, name=None))

    def start(self, how: str, n: int, threshold: float, label: str | None = None, seed: int = 0) -> Session:
        labels = [label] if label else None
        chosen = pick(
            self.table, how, int(n), threshold=threshold, answered=self.answered(), labels=labels, seed=seed
        )
        return Session([asdict(c) for c in chosen], 0)

    def answer(self, session: Session, answer: str, other_label: str | None, reviewer: str) -> Session:
        shown = session.current
        if shown is None:
            return session
        append_answer(self.review_file, shown, answer, other_label, reviewer=reviewer or "")
        return Session(session.candidates, session.i + 1)

    def undo(self, session: Session, reviewer: str) -> Session:
        """Retract this session's last answer (an `undo` line) and show that window again."""
        if session.i == 0:
            return session
        back = Session(session.candidates, session.i - 1)
        append_answer(self.review_file, back.current, "undo", reviewer=reviewer or "")
        return back

    def clip(self, c: Candidate) -> tuple[np.ndarray, float]:
        """The window with CONTEXT_S either side, at the model's rate → (samples, its start in the file)."""
        from learner.audio.decode import decode

        begin = max(0.0, c.start_s - CONTEXT_S)
        d = decode(c.path, self.cfg.sample_rate, offset_s=begin, duration_s=c.end_s + CONTEXT_S - begin)
        return d.samples, begin

    def figure(self, c: Candidate, samples: np.ndarray, begin: float) -> Any:
        import matplotlib.pyplot as plt

        from learner.audio.melspec import logmel
        from learner.report.plots import spectrogram_figure

        cfg = self.cfg
        title = f"{Path(c.path).name} · {c.start_s:.2f}–{c.end_s:.2f} s · {c.label} {c.score:.3f}"
        fig = spectrogram_figure(
            logmel(samples, cfg), cfg.sample_rate, cfg.hop_length, title, f_max=cfg.f_max
        )
        ax = fig.axes[0]
        for t in (c.start_s - begin, c.end_s - begin):
            ax.axvline(t, color="white", lw=1.2, ls="--")
        ax.xaxis.set_major_formatter(lambda v, _: f"{v + begin:.1f}")  # the file's seconds, not the clip's
        ax.set_xlabel("seconds into the file")
        plt.close(fig)
        return fig

    def status(self, session: Session) -> str:
        c = session.current
        done = (
            f"{session.i} of {len(session.candidates)} answered in this session · file `{self.review_file}`"
        )
        if c is None:
            more = "nothing left to review" if not session.candidates else "all answered"
            return f"**{more}** · {done}"
        return (
            f"**{c.label}** {c.score:.3f} · `{Path(c.path).name}` {c.start_s:.2f}–{c.end_s:.2f} s "
            f"(picked: {c.pick}) · {done}"
        )


def review_tab(
    source: str | Path, review_file: str | Path | None, cfg: AudioConfig, classes: list[str]
) -> Reviewer:
    """The Review tab's widgets (inside an open gr.Blocks); returns its Reviewer."""
    import gradio as gr

    rv = Reviewer(source, review_file or default_review_file(source), cfg, classes)
    one_at_a_time = dict(concurrency_id="review", concurrency_limit=1)  # answers in the order pressed
    with gr.Tab("Review", elem_id="review-tab"):
        gr.HTML("", js_on_load=KEYS_JS, padding=False, container=False)
        with gr.Row():
            how = gr.Dropdown(list(PICKS), value="uncertain", label="pick")
            n = gr.Number(50, precision=0, minimum=1, label="windows", elem_id="review-windows")
            threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="threshold (uncertain)")
            only = gr.Dropdown(["", *sorted(set(rv.table["label"]))], value="", label="only label")
            who = gr.Textbox("", label="reviewer", max_lines=1)
            go = gr.Button("Start", variant="primary", elem_id="review-start")
        status = gr.Markdown(elem_id="review-status")
        plot = gr.Plot(show_label=False, format="png")
        audio = gr.Audio(type="numpy", autoplay=True, interactive=False, label="window ± 1 s")
        with gr.Row(elem_id="review-answers"):
            buttons = {
                a: gr.Button(
                    f"{a} ({k})", elem_id=f"review-{a}", variant="primary" if a == "yes" else "secondary"
                )
                for a, k in BUTTONS.items()
            }
            other = gr.Dropdown(classes, value=classes[0] if classes else None, label="other label")
        state = gr.State(Session())

        def show(session: Session):
            c = session.current
            if c is None:
                return session, rv.status(session), None, None
            samples, begin = rv.clip(c)
            clip16 = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
            return session, rv.status(session), rv.figure(c, samples, begin), (cfg.sample_rate, clip16)

        outputs = [state, status, plot, audio]

        def start(h: str, k: float, t: float, label: str):
            return show(rv.start(h, k, t, label or None))

        go.click(start, [how, n, threshold, only], outputs, api_name="review_start", **one_at_a_time)
        for a in ("yes", "no", "other", "unsure"):
            buttons[a].click(
                lambda s, o, w, a=a: show(rv.answer(s, a, o, w)),
                [state, other, who],
                outputs,
                api_name=f"review_{a}",
                **one_at_a_time,
            )
        undo = buttons["undo"]
        undo.click(
            lambda s, w: show(rv.undo(s, w)), [state, who], outputs, api_name="review_undo", **one_at_a_time
        )
        _calibration_panel(rv)
    return rv


def _calibration_panel(rv: Reviewer) -> None:
    import gradio as gr

    from learner.report.calibration import calibrate_review, plot_calibration

    with gr.Accordion("Threshold from the answers so far", open=False):
        precision = gr.Slider(0.5, 0.99, value=0.9, step=0.01, label="wanted precision")
        fit = gr.Button("Fit")
        table = gr.Dataframe(headers=["label", "threshold", "answers", "yes", "note"], interactive=False)
        curve = gr.Plot(show_label=False, format="png")

        def run(p: float):
            if not rv.review_file.exists():
                raise gr.Error(f"{rv.review_file}: no answers yet", print_exception=False)
            review = read_review(rv.review_file)
            rows = [
                [k, v["threshold"], v["n"], v["n_yes"], v.get("reason") or ""]
                for k, v in calibrate_review(review, p).items()
            ]
            return pd.DataFrame(
                rows, columns=["label", "threshold", "answers", "yes", "note"]
            ), plot_calibration(review)

        fit.click(run, precision, [table, curve], api_name="review_calibrate")
