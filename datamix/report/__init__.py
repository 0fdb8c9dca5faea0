"""Figures and one HTML/Markdown report of a curation decision."""

from datamix.report.plots import (
    plot_budget_curve,
    plot_candidates,
    plot_frontier,
    plot_law_fit,
    plot_mixture,
    plot_predicted_vs_measured,
    save_figure,
)
from datamix.report.report import ReportFiles, decision_table, write_report

__all__ = [
    "ReportFiles",
    "decision_table",
    "plot_budget_curve",
    "plot_candidates",
    "plot_frontier",
    "plot_law_fit",
    "plot_mixture",
    "plot_predicted_vs_measured",
    "save_figure",
    "write_report",
]
