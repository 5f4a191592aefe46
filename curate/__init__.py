"""The `curate` command line, on top of every package."""
