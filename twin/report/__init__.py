"""The closed-loop report (tables, figures, scene view) and the dataset summary."""

from twin.report.report import format_table, write_report

__all__ = ["format_table", "write_report"]
