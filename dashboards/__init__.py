"""Dashboards: the HTTP service and its pages (issue 6)."""
