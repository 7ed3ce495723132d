"""Self-contained HTML reports: :class:`Report` (sections, figures, tables, text) written as one
``report.html`` with its figures; :mod:`~vbayes.report.html` holds the page template."""

from vbayes.report.page import Report

__all__ = ["Report"]
