"""Apply a plan: write the curated data and its manifest."""

from datamix.apply.materialize import Selection, apply_plan, select_rows

__all__ = ["apply_plan", "select_rows", "Selection"]
