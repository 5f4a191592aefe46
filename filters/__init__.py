"""Filters: pure scoring and deciding over column batches (issue 3). Imports no other package of ours."""
