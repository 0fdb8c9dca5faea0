"""Apply a plan: write the curated data and its manifest."""

from datamix.apply.materialize import Selection, apply_plan, manifest_intact, select_rows

__all__ = ["apply_plan", "manifest_intact", "select_rows", "Selection"]
