"""The HTML report of a ranking (``vidreid test --report``, ``vidreid match --report``): one page,
``report.html``, with its thumbnails beside it in ``report_files/``; no server, no network."""

from .html import (PAGE_SIZE, ReportQuery, Thumbnails, build_queries_from_distances, build_queries_from_lists,
                   identities_rows, start_report, write_report)

__all__ = ["PAGE_SIZE", "ReportQuery", "Thumbnails", "build_queries_from_distances", "build_queries_from_lists",
           "identities_rows", "start_report", "write_report"]
