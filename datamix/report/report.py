"""One HTML and one Markdown report of a curation decision: the plan, its inputs and its figures.

The decision table is built from the :class:`~datamix.optimize.Plan` itself, so the report's numbers
are the plan's: every number cell of the HTML carries the exact value in ``data-value`` (Python
``repr``) next to a rounded display. Figures are PNGs in ``figures/`` beside the reports; every file
is written atomically.
"""

from __future__ import annotations

import html
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from datamix.io import write_text
from datamix.report.plots import save_figure

logger = logging.getLogger(__name__)

__all__ = ["ReportFiles", "write_report", "decision_table"]

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:0.8em}"""


@dataclass(frozen=True)
class ReportFiles:
    """Paths of a written report."""

    html: Path
    markdown: Path
    figures: dict = field(default_factory=dict)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


#: ratios below this are the optimizer's numerical dust: shown as 0, the source as unused
UNUSED = 1e-6


def decision_table(plan) -> pd.DataFrame:
    """Per source: whether it is used, available, ratio, keep-fraction, threshold, kept, samples
    seen, epochs, buy. A source with a ratio below :data:`UNUSED` shows ratio 0, "unused" and no
    keep-fraction or threshold (they mean nothing for data that is not trained on); what the plan
    does not give (no thresholds, no epochs) is None, shown "—"."""
    prov = plan.provenance or {}
    avail = prov.get("available", {}) or {}
    kept = prov.get("kept", {}) or {}
    tokens = prov.get("tokens")
    rows = []
    for n, r in plan.ratios.items():
        used = r >= UNUSED
        r = float(r) if used else 0.0
        rows.append({
            "source": n,
            "used": "yes" if used else "unused",
            "available": avail.get(n),
            "ratio": r,
            "keep_fraction": plan.keep_fractions.get(n, 1.0) if used else None,
            "threshold": plan.thresholds.get(n) if used else None,
            "kept": kept.get(n),
            "samples_seen": None if tokens is None else r * float(tokens),
            "epochs": plan.epochs.get(n),
            "buy": plan.buy.get(n),
        })
    return pd.DataFrame(rows, dtype=object)  # None stays None ("—"), not NaN


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        cells = []
        for c in df.columns:
            v = row[c]
            if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v, "dtype", None) is not None
                                        and getattr(v.dtype, "kind", "") in "fi"):
                v = v.item() if hasattr(v, "item") else v
                cells.append(f'<td class="num" data-col="{html.escape(str(c))}" data-value="{v!r}">{_fmt(v)}</td>')
            elif isinstance(v, int) and not isinstance(v, bool):
                cells.append(f'<td class="num" data-col="{html.escape(str(c))}" data-value="{v!r}">{v}</td>')
            else:
                cells.append(f'<td data-col="{html.escape(str(c))}">{html.escape(_fmt(v))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _md_table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(v.item() if hasattr(v, "item") else v) for v in row) + " |")
    return "\n".join(lines)


def _kv(mapping: Mapping) -> pd.DataFrame:
    return pd.DataFrame({"input": list(mapping), "value": pd.Series([_flat(v) for v in mapping.values()], dtype=object)})


def _flat(v):
    if v is None:
        return "—"
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return v


def write_report(out_dir: str | os.PathLike, plan, *, figures: Mapping | None = None, inputs: Mapping | None = None,
                 comparisons: pd.DataFrame | None = None, frontier=None, title: str = "datamix curation report",
                 notes: Sequence[str] = (), tables: Mapping[str, pd.DataFrame] | None = None) -> ReportFiles:
    """Write ``report.html``, ``report.md`` and ``figures/*.png`` into ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
    plan : Plan
        The decision; its table, predicted metric, interval and provenance are reported.
    figures : dict of str to matplotlib Figure, optional
        Saved as ``figures/<name>.png`` and shown in this order (the figures are closed).
    inputs : dict, optional
        The decision's inputs (budgets, constraints, data, predictor), shown as a table.
    comparisons : DataFrame, optional
        Rows to compare (e.g. the plan, the uniform mixture, unfiltered data): any columns.
    frontier : Frontier, optional
        Its table is included.
    title : str
    notes : sequence of str
        Paragraphs shown under the title.
    tables : dict of str to DataFrame, optional
        More tables, each under its name as a heading (after the comparisons).

    Returns
    -------
    ReportFiles
    """
    out = Path(out_dir)
    fig_paths = {}
    for name, fig in (figures or {}).items():
        fig_paths[name] = Path(save_figure(fig, out / "figures" / f"{name}.png"))
    table = decision_table(plan)
    lo, hi = plan.interval
    prov = plan.provenance or {}
    level = (prov.get("solver") or {}).get("level", 0.9)
    better = {True: "; higher is better", False: "; lower is better"}.get(prov.get("greater_is_better"), "")
    headline = (f"Predicted metric: {_fmt(plan.predicted)} ({int(round(level * 100))}% interval "
                f"{_fmt(lo)} – {_fmt(hi)}){better}")
    if prov.get("interval_calibrated") is False:
        headline += (" — the interval is not calibrated: the plan lies farther past the measured runs than "
                     "the prediction's error was checked")
    sections_html = [f"<h1>{html.escape(title)}</h1>"]
    sections_md = [f"# {title}", ""]
    for note in notes:
        sections_html.append(f"<p>{html.escape(note)}</p>")
        sections_md += [note, ""]
    sections_html.append(f'<p id="predicted" data-value="{plan.predicted!r}">{html.escape(headline)}</p>')
    sections_md += [headline, ""]
    sections_html += ["<h2>Decision</h2>", _html_table(table)]
    sections_md += ["## Decision", "", _md_table(table), ""]
    if inputs:
        kv = _kv(inputs)
        sections_html += ["<h2>Inputs</h2>", _html_table(kv)]
        sections_md += ["## Inputs", "", _md_table(kv), ""]
    if comparisons is not None and len(comparisons):
        sections_html += ["<h2>Compared mixtures</h2>", _html_table(comparisons.reset_index(drop=True))]
        sections_md += ["## Compared mixtures", "", _md_table(comparisons.reset_index(drop=True)), ""]
    for name, df in (tables or {}).items():
        sections_html += [f"<h2>{html.escape(name)}</h2>", _html_table(df.reset_index(drop=True))]
        sections_md += [f"## {name}", "", _md_table(df.reset_index(drop=True)), ""]
    for name, path in fig_paths.items():
        rel = f"figures/{path.name}"
        sections_html += [f"<h2>{html.escape(name.replace('_', ' '))}</h2>",
                          f'<img src="{rel}" alt="{html.escape(name)}">']
        sections_md += [f"## {name.replace('_', ' ')}", "", f"![{name}]({rel})", ""]
    if frontier is not None:
        ft = frontier.to_frame()
        sections_html += ["<h2>Threshold curve</h2>", _html_table(ft)]
        sections_md += ["## Threshold curve", "", _md_table(ft), ""]
    plan_yaml = plan.to_yaml()
    sections_html += ["<h2>Plan (plan.yaml)</h2>", f"<pre>{html.escape(plan_yaml)}</pre>"]
    sections_md += ["## Plan (plan.yaml)", "", "```yaml", plan_yaml.rstrip(), "```", ""]
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(sections_html) + "\n</body></html>\n")
    html_path = write_text(out / "report.html", page)
    md_path = write_text(out / "report.md", "\n".join(sections_md))
    logger.info("report written to %s (%d figures)", html_path, len(fig_paths))
    return ReportFiles(html=Path(html_path), markdown=Path(md_path), figures=fig_paths)
