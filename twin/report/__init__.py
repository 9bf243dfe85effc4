"""What people look at: the closed-loop report (tables, figures, scene view) and the dataset summary."""

from twin.report.tables import format_table
from twin.report.writer import write_report

__all__ = ["format_table", "write_report"]
