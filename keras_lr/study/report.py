"""The study report: ``report.md`` and a self-contained ``report.html`` (images as base64).

Both are rendered from the same list of blocks (heading, paragraph, list, table, image,
collapsed details), so they always say the same thing. A reader meets a summary first (one
sentence per question, with its verdicts), then the headline table, then each question with
its claims, the figure that shows them and the per-seed detail collapsed. The report is
written from whatever the store holds, so an interrupted study still gets a consistent
(partial) report.
"""

from __future__ import annotations

import base64
import html
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from keras_lr.study import claims as claims_mod
from keras_lr.study import figures, metrics

__all__ = ["CAPTIONS", "QUESTIONS", "build_blocks", "headline_rows", "render_html",
           "render_markdown", "summary_lines", "write_report"]


def _f(value, fmt=".3f"):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _range(interval):
    return "none" if interval is None else f"{interval[0]:.3g} - {interval[1]:.3g}"


def headline_rows(records) -> list[list[str]]:
    """One row per family and optimizer (digits, constant schedule): the main results."""
    ref = claims_mod.reference_scores(records)
    rows = []
    for family in ("mlp", "cnn", "lstm", "gru", "simple_rnn"):
        for optimizer in ("sgd", "adam"):
            for data in ("digits",) + tuple(sorted({r["data"] for r in records
                                                    if r.get("kind") == "run"} - {"digits"})):
                runs = claims_mod._runs(records, family=family, data=data, optimizer=optimizer)
                if not runs:
                    continue
                best = metrics.best_rate(runs)
                at = [r for r in runs if r["lr"] == best]
                scores = [r["final_score"] for r in at]
                bests = [r["best_score"] for r in at]
                diverging = sorted(r["lr"] for r in runs if r["diverged"])
                reached = [r["epochs_to_target"] for r in at if r["epochs_to_target"]]
                interval = figures._aggregate_range(runs, ref.get((family, data), 1.0))
                rows.append([
                    f"{family}/{data}", optimizer, f"{best:.3g}",
                    f"{np.mean(scores):.3f} ± {np.std(scores, ddof=1) if len(scores) > 1 else 0:.3f}",
                    _f(float(np.mean(bests))), _range(interval),
                    f"{diverging[0]:.3g}" if diverging else "none",
                    _f(float(np.mean(reached)), ".1f") if reached else "never",
                    _f(float(np.nanmean([r["oscillation"] for r in at])), ".2f"),
                    str(len(at)),
                ])
    return rows


HEADLINE_HEADER = ["model/data", "optimizer", "best lr", "final score (mean ± sd)",
                   "best score", "stable range", "first diverging lr", "epochs to 0.9",
                   "oscillation", "seeds"]


def schedule_rows(records):
    rows = []
    data = figures.primary_data(records)
    for family in ("mlp", "cnn", "lstm", "gru", "simple_rnn"):
        for schedule, (rate, runs) in sorted(
                figures.best_per_schedule(records, family, data).items()):
            scores = [r["final_score"] for r in runs]
            rows.append([f"{family}/{data}", schedule, f"{rate:.3g}", _f(float(np.mean(scores))),
                         _f(float(np.mean([r["final_loss"] for r in runs])), ".3f"),
                         str(len(runs))])
    return rows


def range_test_rows(records):
    by = defaultdict(list)
    for r in records:
        if r.get("kind") == "range_test":
            by[(r["family"], r["data"], r["optimizer"])].append(r)
    rows = []
    for (family, data, optimizer), tests in sorted(by.items()):
        sugg = [t["suggestion"] for t in tests if t["suggestion"] is not None]
        grid = metrics.best_rate(claims_mod._runs(records, family=family, data=data,
                                                  optimizer=optimizer))
        rows.append([f"{family}/{data}", optimizer,
                     ", ".join(f"{s:.3g}" for s in sugg) or "-",
                     "-" if grid is None else f"{grid:.3g}", str(len(tests))])
    return rows


QUESTIONS = (
    ("Optimizers: where does each optimizer's best rate lie?", ("adam_vs_sgd",),
     ("study_accuracy_vs_lr.png",)),
    ("Warmup, clipping and layer-wise rates: what widens the stable range?",
     ("warmup_cnn", "clip_rnn", "conv_vs_dense", "gates_lstm"), ("study_stable_range.png",)),
    ("Width and muP: does the best rate move as the network widens?",
     ("width_sp", "width_mup", "mup_transfer"), ("study_width_transfer.png",)),
    ("Depth and residual connections: how do they move the stable range?",
     ("depth_narrows", "residual_widens"), ("study_depth.png",)),
    ("Normalization: does it raise the highest stable rate?", ("norm_stable",),
     ("study_norm.png",)),
    ("The range test: does its suggestion find the grid optimum?", ("range_test",),
     ("study_range_test.png",)),
    ("Learning-rate-free optimizers: do their defaults match tuned Adam?", ("lr_free",),
     ("study_lr_free_d.png",)),
)
"""The report's questions: ``(question, claim ids, figure file names)``, in report order."""

CAPTIONS = {
    "study_accuracy_vs_lr.png": "Final validation accuracy against the learning rate "
    "(band: min-max over seeds).",
    "study_stable_range.png": "Stable learning-rate range per architecture and variant "
    "(rates at which every seed is usable). A variant's range can only start at the "
    "lowest rate it was run at (1e-3 for the default plan's sub-studies).",
    "study_schedules.png": "Validation loss of the best rate of each schedule.",
    "study_range_test.png": "Range-test curves; dot: valley suggestion, dashed line: "
    "grid optimum of the same seed.",
    "study_lr_free_d.png": "The estimate d of Prodigy and DAdaptAdam after every step "
    "(their step size at the defaults), one line per seed; dotted: tuned Adam's rate.",
    "study_width_transfer.png": "Final validation loss against the rate, one curve per width "
    "(mean over seeds; large dot: its minimum): standard parametrization (left) and muP with "
    "the smallest width as base (right).",
    "study_depth.png": "Stable range (every seed usable) against depth, plain and residual; "
    "x: no usable rate.",
    "study_norm.png": "Stable range (every seed usable) without normalization, with "
    "BatchNorm and with LayerNorm; x: no usable rate.",
}


def _claim_table(rows):
    return ("table", ["claim", "subject", "effect ± sd", "seeds", "rule", "verdict"],
            [[c["claim"], c["subject"], f"{_f(c['effect'], '.3g')} ± "
              f"{_f(c['spread'], '.3g')} {c['unit']}", str(c["seeds"]), c["rule"],
              f"**{c['verdict']}**"] for c in rows])


def summary_lines(claim_rows) -> list[str]:
    """One sentence per question that has claims: each claim with its subjects by verdict."""
    lines = []
    for question, ids, _ in QUESTIONS:
        parts = []
        for cid in ids:
            rows = [c for c in claim_rows if c["id"] == cid]
            if not rows:
                continue
            by = defaultdict(list)
            for c in rows:
                by[c["verdict"]].append(c["subject"])
            verdicts = "; ".join(f"{v} for {', '.join(by[v])}" for v in
                                 ("supported", "not supported", "inconclusive", "not measured")
                                 if by[v])
            parts.append(f"{claims_mod.CLAIMS[cid].rstrip('.')}: {verdicts}")
        if parts:
            lines.append(f"{question} {'. '.join(parts)}.")
    return lines


def build_blocks(records, claim_rows, settings, status, figure_paths) -> list[tuple]:
    """The report as blocks: ``("h", level, text)``, ``("p", text)``, ``("list", items)``,
    ``("table", header, rows)``, ``("img", path, caption)`` and ``("details", summary,
    items)`` (collapsed in HTML and on GitHub).

    Order: the summary (one sentence per question), the headline table, then each question
    with its claims, its figure and its per-seed detail (collapsed), then the schedules and
    any figure no question shows.
    """
    from keras_lr.study import lrfree, structure_claims

    figures_by_name = {Path(p).name: p for p in figure_paths}
    blocks = [("h", 1, "keras-lr study: learning rate x architecture"), ("p", status)]
    setting_text = ", ".join(f"{k}={_fmt_setting(v)}" for k, v in settings.items())
    blocks += [("p", f"Settings: {setting_text}.")]
    lines = summary_lines(claim_rows)
    if lines:
        blocks += [("h", 2, "Summary"), ("list", lines)]
    blocks += [("h", 2, "Headline results"),
               ("p", "Digits unless stated, constant schedule, no clipping. Score = validation "
                "accuracy (skill 1 - MSE/baseline on the adding task). Best lr = highest mean "
                "final score over seeds. Stable range = rates at which every seed's run is "
                "usable (not diverged, final score at least half-way from chance to the best "
                "score of that model and data)."),
               ("table", HEADLINE_HEADER, headline_rows(records))]
    blocks += [("h", 2, "Claims by question"),
               ("p", "Each claim is one effect per seed (paired seeds); mean ± sample sd. "
                "Verdict: supported if the one-sd interval lies entirely on the claimed side "
                "of the threshold tau, not supported if entirely on the other side, otherwise "
                "(or with fewer than 2 seeds) inconclusive.")]
    data = figures.primary_data(records)
    extra = {
        "width_sp": ("Best grid rate per width (mean of log10 over seeds) and the cost of "
                     "transfer: final validation loss at the largest width with the rate tuned "
                     "at the smallest, minus the best there.",
                     ["model/data", "optimizer", "parametrization", "best rate per width",
                      "transfer cost (loss)"], structure_claims.width_rows(records, data)),
        "lr_free": ("Mean final validation accuracy over seeds. Tuned Adam: the best mean of "
                    "Adam's constant grid and its warmup_cosine runs. Prodigy and DAdaptAdam at "
                    "learning_rate 1 (the step size is their estimate d), ScheduleFreeAdamW at "
                    "its default 0.0025 and at its best grid rate, scored at its average x.",
                    lrfree.HEADER, lrfree.table_rows(records, data)),
        "range_test": ("The fastai valley suggestion of each seed against the grid optimum.",
                       ["model/data", "optimizer", "suggestions (per seed)", "grid best lr",
                        "tests"], range_test_rows(records)),
    }
    shown = set()
    for question, ids, names in QUESTIONS:
        rows = [c for c in claim_rows if c["id"] in ids]
        tables = [extra[cid] for cid in ids if cid in extra and extra[cid][2]]
        if not rows and not tables:
            continue
        blocks.append(("h", 3, question))
        if rows:
            blocks.append(_claim_table(rows))
        for text, header, table in tables:
            blocks += [("p", text), ("table", header, table)]
        for name in names:
            if name in figures_by_name:
                blocks.append(("img", figures_by_name[name], CAPTIONS.get(name, "")))
                shown.add(name)
        details = [f"{c['claim']} / {c['subject']}: {c['detail']}" for c in rows
                   if c["detail"]]
        if details:
            blocks.append(("details", "Per-seed detail", details))
    rows = schedule_rows(records)
    if rows:
        blocks += [("h", 2, "Schedules (adam, best peak rate per schedule)"),
                   ("table", ["model/data", "schedule", "best lr", "final score", "final loss",
                              "seeds"], rows)]
        if "study_schedules.png" in figures_by_name:
            blocks.append(("img", figures_by_name["study_schedules.png"],
                           CAPTIONS["study_schedules.png"]))
            shown.add("study_schedules.png")
    rest = [p for p in figure_paths if Path(p).name not in shown]
    if rest:
        blocks.append(("h", 2, "Other figures"))
        blocks += [("img", p, CAPTIONS.get(Path(p).name, "")) for p in rest]
    return blocks


def _fmt_setting(value):
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v)
                               for v in value) + "]"
    return str(value)


def render_markdown(blocks) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append("#" * block[1] + " " + block[2])
        elif kind == "p":
            out.append(block[1])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |"
                      for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[2]}]({Path(block[1]).name})\n\n*{block[2]}*")
        elif kind == "details":
            items = "\n".join(f"- {item}" for item in block[2])
            out.append(f"<details><summary>{html.escape(block[1])}</summary>\n\n{items}\n\n"
                       "</details>")
    return "\n\n".join(out) + "\n"


def render_html(blocks) -> str:
    body = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            body.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "list":
            items = "".join(f"<li>{html.escape(i)}</li>" for i in block[1])
            body.append(f"<ul>{items}</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{_cell_html(c)}</td>" for c in row) + "</tr>"
                for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "details":
            items = "".join(f"<li>{html.escape(i)}</li>" for i in block[2])
            body.append(f"<details><summary>{html.escape(block[1])}</summary>"
                        f"<ul>{items}</ul></details>")
        elif kind == "img":
            data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(block[2])}" '
                        f'src="data:image/png;base64,{data}"/>'
                        f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
             "padding:3px 6px;text-align:left}img{max-width:100%}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>keras-lr study</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _cell_html(value) -> str:
    text = str(value)
    if text.startswith("**") and text.endswith("**"):
        return f"<b>{html.escape(text[2:-2])}</b>"
    return html.escape(text)


def write_report(directory, records, claim_rows, settings, status) -> dict:
    """Draw the figures and write ``report.md`` and ``report.html``; return the paths."""
    directory = Path(directory)
    paths = []
    data = figures.primary_data(records)
    from keras_lr.study import structure_figures

    for name, draw in {**figures.FIGURES, **structure_figures.FIGURES}.items():
        path = draw(records, directory / name, data=data)
        if path is not None:
            paths.append(path)
    blocks = build_blocks(records, claim_rows, settings, status, paths)
    (directory / "report.md").write_text(render_markdown(blocks), encoding="utf-8")
    (directory / "report.html").write_text(render_html(blocks), encoding="utf-8")
    return {"markdown": str(directory / "report.md"), "html": str(directory / "report.html"),
            "figures": paths}
