"""Writing results: JSON, CSV, Markdown, PNG plots, terminal tables and the self-contained report.html."""

from labelleak.report.figures import plot_roc, plot_series
from labelleak.report.files import SCORE_COLUMNS, write_json, write_scores_csv
from labelleak.report.table import audit_table, print_audit_table

__all__ = [
    "SCORE_COLUMNS",
    "audit_table",
    "plot_roc",
    "plot_series",
    "print_audit_table",
    "write_json",
    "write_scores_csv",
]
