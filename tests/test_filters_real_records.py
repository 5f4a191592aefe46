"""Dedup filters end to end on real records: warehouse -> Arrow batch -> decisions.

The bundled raw-format fixture holds the first 200 of the 400 real ultrachat_200k dialogues
again (rebuilt as raw UltraChat), so a warehouse with both files has exactly 200 planted
duplicate pairs made of real text.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from filters import load_filter
from warehouse import Warehouse
from warehouse.ingest import IngestOptions, ingest


@pytest.fixture(scope="module")
def real_dialogues(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    samples = Path(__file__).resolve().parents[1] / "data" / "samples"
    wh = Warehouse(tmp_path_factory.mktemp("real") / "wh.duckdb", wait_s=0)
    files = [samples / "ultrachat_200k_sample.jsonl", samples / "ultrachat_raw_fixture.jsonl"]
    ingest(wh, [str(f) for f in files], IngestOptions(progress=False), log=lambda _: None)
    with wh.read() as con:
        return con.execute(
            """SELECT dialogue_id AS row_id, messages, first_user_turn, n_turns, source_format,
                      source_line
               FROM dialogues ORDER BY source_format DESC, source_line"""
        ).to_arrow_table()


def _dropped_pairs(decisions: pa.Table, dialogues: pa.Table) -> set[int]:
    """source_line of each dropped row (the raw copies), checked against their representative."""
    dropped = decisions.filter(pc.invert(decisions.column("keep")))
    line = dict(
        zip(dialogues["row_id"].to_pylist(), dialogues["source_line"].to_pylist(), strict=True)
    )
    fmt = dict(
        zip(dialogues["row_id"].to_pylist(), dialogues["source_format"].to_pylist(), strict=True)
    )
    out = set()
    for rid, rep in zip(
        dropped["row_id"].to_pylist(), dropped["representative"].to_pylist(), strict=True
    ):
        assert line[rid] == line[rep] and fmt[rid] != fmt[rep]
        out.add(line[rid])
    return out


@pytest.mark.parametrize("name", ["exact_dedup", "minhash_dedup"])
def test_lexical_dedup_finds_the_real_duplicate_pairs(real_dialogues: pa.Table, name: str) -> None:
    f = load_filter(name)()
    res = f.apply(real_dialogues)
    assert res.stats.n_in == 600
    assert _dropped_pairs(res.decisions, real_dialogues) == set(range(1, 201))


@pytest.mark.slow
def test_semantic_dedup_on_real_first_user_turns(real_dialogues: pa.Table) -> None:
    from filters.embed import SentenceTransformerEmbedder

    f = load_filter("semantic_dedup")(SentenceTransformerEmbedder(progress=False), threshold=0.99)
    res = f.apply(real_dialogues)
    dropped = res.decisions.filter(pc.invert(res.decisions.column("keep")))
    # every real duplicate pair is found; at 0.99 nothing else among 400 real prompts merges
    assert _dropped_pairs(res.decisions, real_dialogues) == set(range(1, 201))
    assert dropped.num_rows == 200
