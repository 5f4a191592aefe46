"""Built-in benchmark prompts for decontamination, shipped as package data.

Why: a training set that contains evaluation prompts inflates the scores measured on them;
the decontamination filter compares user turns with these prompts. Every loader returns the
same shape, `pa.Table(benchmark, item_id, text)`, so custom sets plug in the same way.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

BENCHMARK_SCHEMA = pa.schema(
    [("benchmark", pa.string()), ("item_id", pa.string()), ("text", pa.string())]
)

_FILES = {
    "mt_bench": "mt_bench_question.jsonl",
    "vicuna_bench": "vicuna_bench_question.jsonl",
    "alpaca_eval": "alpaca_eval_instructions.jsonl",
    "truthfulqa": "truthfulqa.csv",
}
BUILTIN_BENCHMARKS: tuple[str, ...] = tuple(_FILES)


def _path(filename: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(filename)))


def _table(benchmark: str, item_id: pa.Array, text: pa.Array) -> pa.Table:
    keep = pc.and_(pc.is_valid(text), pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0))
    t = pa.table(
        {
            "benchmark": pa.array([benchmark] * len(text), pa.string()),
            "item_id": pc.cast(item_id, pa.string()),
            "text": pc.cast(text, pa.string()),
        },
        schema=BENCHMARK_SCHEMA,
    )
    return t.filter(keep)


def _turns_table(benchmark: str, path: Path) -> pa.Table:
    """FastChat question files: one item per turn, id `<question_id>:turn<n>` (1-based)."""
    raw = pajson.read_json(path)
    turns = raw.column("turns").combine_chunks()
    parents = pc.list_parent_indices(turns).to_numpy()
    flat = pc.list_flatten(turns)
    turn_no = np.arange(len(parents)) - turns.offsets.to_numpy()[parents] + 1
    qid = pc.cast(pc.take(raw.column("question_id"), pa.array(parents)), pa.string())
    ids = pc.binary_join_element_wise(qid, pc.cast(pa.array(turn_no), pa.string()), ":turn")
    return _table(benchmark, ids, flat)


def _row_ids(n: int) -> pa.Array:
    return pa.array(np.arange(n).astype(str), pa.string())


def load_benchmark(name: str) -> pa.Table:
    """One built-in set by name (see BUILTIN_BENCHMARKS)."""
    if name not in _FILES:
        raise KeyError(f"unknown benchmark {name!r}; built-in: {', '.join(_FILES)}")
    path = _path(_FILES[name])
    if name in ("mt_bench", "vicuna_bench"):
        return _turns_table(name, path)
    column = "instruction" if name == "alpaca_eval" else "Question"
    return load_custom(path, column, name=name)


def load_benchmarks(names: list[str] | tuple[str, ...] = BUILTIN_BENCHMARKS) -> pa.Table:
    """Several sets concatenated (default: all built-in ones)."""
    return pa.concat_tables([load_benchmark(n) for n in names])


def load_custom(path: str | Path, column: str, name: str | None = None) -> pa.Table:
    """Prompts from the `column` of a JSONL or CSV file (item_id = 0-based row).

    The benchmark name defaults to the file's stem.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"benchmark file {p} does not exist")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            table = pacsv.read_csv(p)
        elif suffix in (".jsonl", ".json", ".ndjson"):
            table = pajson.read_json(p)
        else:
            raise ValueError(f"benchmark file {p}: expected .jsonl or .csv, got {suffix!r}")
    except pa.ArrowInvalid as exc:
        raise ValueError(f"benchmark file {p} could not be read: {exc}") from exc
    if column not in table.column_names:
        raise KeyError(
            f"benchmark file {p} has no column {column!r} (columns: {', '.join(table.column_names)})"
        )
    text = table.column(column).combine_chunks()
    if not pa.types.is_string(text.type) and not pa.types.is_large_string(text.type):
        raise ValueError(f"benchmark file {p}: column {column!r} is {text.type}, not text")
    return _table(name or p.stem, _row_ids(len(text)), text)


__all__ = [
    "BENCHMARK_SCHEMA",
    "BUILTIN_BENCHMARKS",
    "load_benchmark",
    "load_benchmarks",
    "load_custom",
]
