"""Run every benchmark and write bench/results/*.md.

python -m bench.run_all --dialogues 1470000
"""

from __future__ import annotations

import argparse

from bench import curation_bench, ingest_bench, query_bench, train_bench
from bench.common import DEFAULT_DIALOGUES, log


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dialogues", type=int, default=DEFAULT_DIALOGUES, help="synthetic dialogues")
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads for the queries")
    ap.add_argument("--skip-datasets", action="store_true", help="do not time `datasets`")
    ap.add_argument("--profile", action="store_true", help="also profile our ingest (cProfile)")
    a = ap.parse_args(argv)
    written = [
        ingest_bench.run(a.dialogues, skip_datasets=a.skip_datasets, profile=a.profile),
        query_bench.run(a.dialogues, threads=a.threads),
        curation_bench.run(dialogues=a.dialogues),
        train_bench.run(),
    ]
    for path in written:
        log(f"result: {path}")


if __name__ == "__main__":
    main()
