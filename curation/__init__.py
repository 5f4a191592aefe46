"""Curation: recipes that run filters over the warehouse and commit snapshots (issue 4)."""
