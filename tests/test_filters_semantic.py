"""Semantic dedup, the embedder and its warehouse cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from filters.base import DECISION_SCHEMA
from filters.embed import (
    CachedEmbedder,
    Embedder,
    MemoryCache,
    SentenceTransformerEmbedder,
    text_hashes,
)
from filters.semantic_dedup import SemanticDedupFilter, field_text
from warehouse.embedding_cache import EmbeddingCache
from warehouse.store import Warehouse

MSG = pa.struct([("role", pa.string()), ("content", pa.string())])


def dialogues(firsts: list[str], **extra: list[object]) -> pa.Table:
    return pa.table(
        {
            "row_id": [f"d{i}" for i in range(len(firsts))],
            "messages": pa.array(
                [
                    [{"role": "user", "content": t}, {"role": "assistant", "content": "ok " * i}]
                    for i, t in enumerate(firsts)
                ],
                pa.list_(MSG),
            ),
            **extra,
        }
    )


class TableEmbedder:
    """Deterministic vectors looked up by text; counts what it embeds."""

    model_id = "fake@1"

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = {
            k: np.asarray(v, np.float32) / np.linalg.norm(v) for k, v in vectors.items()
        }
        self.dim = len(next(iter(vectors.values())))
        self.calls: list[int] = []

    def embed(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
        items = texts.to_pylist()
        self.calls.append(len(items))
        return np.stack([self.vectors[t] for t in items]).astype(np.float32)


class Counting:
    """Wraps a real embedder and counts texts sent to it."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.n = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
        self.n += len(texts)
        return self.inner.embed(texts)


FAKE = TableEmbedder(
    {
        "short copy": [1.0, 0.0, 0.0],
        "a much longer copy": [0.99, 0.1, 0.0],
        "mid copy": [0.98, 0.15, 0.0],
        "unrelated": [0.0, 0.0, 1.0],
    }
)
TEXTS = ["short copy", "a much longer copy", "mid copy", "unrelated"]


def test_text_hashes_are_sha256_hex() -> None:
    got = text_hashes(pa.array(["héllo", "", None])).to_pylist()
    assert got[0] == hashlib.sha256("héllo".encode()).hexdigest()
    assert got[1] == got[2] == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    ("keep", "rep"), [("longest", "d1"), ("first", "d0"), ("highest_score", "d2")]
)
def test_keep_policies_pick_the_representative(keep: str, rep: str) -> None:
    table = dialogues(TEXTS, quality=[0.1, 0.5, 0.9, 0.0])
    f = SemanticDedupFilter(FAKE, threshold=0.95, keep=keep, score_column="quality")
    res = f.apply(table)
    assert res.decisions.schema == DECISION_SCHEMA
    d = {r["row_id"]: r for r in res.decisions.to_pylist()}
    assert d[rep]["keep"] and d["d3"]["keep"]
    assert [r for r in d if not d[r]["keep"]] == [r for r in ("d0", "d1", "d2") if r != rep]
    for r in ("d0", "d1", "d2"):
        assert d[r]["representative"] == rep
        assert d[r]["cluster_id"] == d[rep]["cluster_id"]
    assert d["d3"]["cluster_id"] is None and d["d3"]["representative"] is None
    dropped = [d[r] for r in d if not d[r]["keep"]]
    assert all(0.95 <= x["score"] == x["similarity"] < 1.0 for x in dropped)
    assert d[rep]["similarity"] == 1.0 and d[rep]["score"] == 0.0
    assert res.stats.n_dropped == 2


def test_highest_score_needs_the_column() -> None:
    f = SemanticDedupFilter(FAKE, keep="highest_score", score_column="nope")
    with pytest.raises(KeyError, match="score_column"):
        f.apply(dialogues(TEXTS))


def test_threshold_above_all_pairs_keeps_everything() -> None:
    res = SemanticDedupFilter(FAKE, threshold=0.9999).apply(dialogues(TEXTS))
    assert all(res.decisions.column("keep").to_pylist())


def test_chain_member_far_from_representative_is_kept() -> None:
    emb = TableEmbedder(
        {"a": [1.0, 0.0], "b": [np.cos(0.25), np.sin(0.25)], "c": [np.cos(0.5), np.sin(0.5)]}
    )
    # cos(a,b) = cos(b,c) = 0.969 >= 0.96, cos(a,c) = 0.878: one component via b
    res = SemanticDedupFilter(emb, threshold=0.96, keep="first").apply(dialogues(["a", "b", "c"]))
    d = {r["row_id"]: r for r in res.decisions.to_pylist()}
    assert d["d0"]["keep"] and not d["d1"]["keep"] and d["d2"]["keep"]
    assert d["d2"]["representative"] == "d0"
    assert d["d2"]["similarity"] == pytest.approx(np.cos(0.5), abs=1e-5)


def test_field_text_dialogue_column_and_unknown() -> None:
    t = dialogues(["hi there", "yo"], title=["T1", "T2"])
    # the whole dialogue is the dedup fields' `role: content` lines, cut to max_chars
    assert field_text(t, "dialogue", 12).to_pylist() == ["user: hi the", "user: yo\nass"]
    assert field_text(t, "dialogue", 100) == field_text(t, "whole_dialogue", 100)
    assert field_text(t, "dialogue", 100).to_pylist()[1] == "user: yo\nassistant: ok "
    assert field_text(t, "title", 100).to_pylist() == ["T1", "T2"]
    assert field_text(t, "first_user_turn", 100).to_pylist() == ["hi there", "yo"]
    with pytest.raises(KeyError, match="nope"):
        field_text(t, "nope", 10)


@pytest.mark.parametrize("index", ["flat", "kmeans", "hnsw"])
def test_indexes_find_planted_pairs(index: str) -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2000, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    noisy = base[:100] + 0.02 * rng.normal(size=(100, 32)).astype(np.float32)
    x = np.vstack([base, noisy / np.linalg.norm(noisy, axis=1, keepdims=True)])
    emb = TableEmbedder({str(i): list(v) for i, v in enumerate(x)})
    f = SemanticDedupFilter(emb, threshold=0.95, index=index, n_clusters=20)
    i, j, s = f.pairs(x)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    planted = {(k, 2000 + k) for k in range(100)}
    assert len(found & planted) >= 95 and found <= planted
    assert (s >= 0.95).all()


def test_cache_round_trip_in_a_warehouse(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh.duckdb", wait_s=0)
    texts = pa.array(["short copy", "unrelated", "short copy", "mid copy"])
    fake = TableEmbedder({**{t: list(FAKE.vectors[t]) for t in TEXTS}, "new": [0.0, 1.0, 0.0]})
    cache = EmbeddingCache(wh)
    first = CachedEmbedder(fake, cache)
    a = first.embed(texts)
    assert first.n_computed == 3  # the repeated text is embedded once
    assert cache.count("fake@1") == 3 and cache.count("other") == 0
    again = CachedEmbedder(fake, EmbeddingCache(wh))
    b = again.embed(pa.array(["mid copy", "short copy", "unrelated", "short copy"]))
    assert again.n_computed == 0
    np.testing.assert_allclose(b, a[[3, 0, 1, 0]])
    # re-putting stored hashes does not duplicate rows
    cache.put("fake@1", text_hashes(pa.array(["mid copy"])), a[3:4])
    assert cache.count() == 3
    # a partly new batch embeds only the new text
    third = CachedEmbedder(fake, EmbeddingCache(wh))
    c = third.embed(pa.array(["new", "unrelated"]))
    assert third.n_computed == 1
    np.testing.assert_allclose(c[1], a[1])


def test_cache_get_on_missing_warehouse_finds_nothing(tmp_path: Path) -> None:
    cache = EmbeddingCache(Warehouse(tmp_path / "none.duckdb"))
    found, _ = cache.get("m", pa.array(["x", "y"]))
    assert not found.any() and not (tmp_path / "none.duckdb").exists()


def test_cache_reuses_an_open_connection(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh.duckdb", wait_s=0)
    with wh.write() as con:
        emb = CachedEmbedder(FAKE, EmbeddingCache(wh, connection=con))
        emb.embed(pa.array(["unrelated"]))
        emb.embed(pa.array(["unrelated"]))
        assert emb.n_computed == 1


# -- real model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(progress=False)


PARAPHRASES = [
    "How do I bake a loaf of sourdough bread at home?",
    "What is the capital city of Australia?",
    "How do I bake a loaf of sourdough bread at home??",
    "Explain the offside rule in football to a beginner.",
    "Can you explain the offside rule in football to a beginner?",
    "Write a haiku about autumn leaves.",
]


@pytest.mark.slow
def test_real_model_vectors_are_normalised(model: SentenceTransformerEmbedder) -> None:
    assert isinstance(model, Embedder)
    x = model.embed(pa.array(PARAPHRASES))
    assert x.shape == (6, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert model.model_id == "all-MiniLM-L6-v2@256"


@pytest.mark.slow
def test_real_dedup_groups_paraphrases_only(model: SentenceTransformerEmbedder) -> None:
    res = SemanticDedupFilter(model, threshold=0.95).apply(dialogues(PARAPHRASES))
    d = {r["row_id"]: r for r in res.decisions.to_pylist()}
    assert [r for r in d if not d[r]["keep"]] == ["d0", "d3"]
    assert d["d0"]["representative"] == "d2" and d["d3"]["representative"] == "d4"
    assert d["d1"]["cluster_id"] is None and d["d5"]["cluster_id"] is None


@pytest.mark.slow
def test_real_cache_second_run_embeds_nothing(
    model: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    wh = Warehouse(tmp_path / "wh.duckdb", wait_s=0)
    counting = Counting(model)
    table = dialogues(PARAPHRASES)
    one = SemanticDedupFilter(CachedEmbedder(counting, EmbeddingCache(wh))).apply(table)
    assert counting.n == 6
    two = SemanticDedupFilter(CachedEmbedder(counting, EmbeddingCache(wh))).apply(table)
    assert counting.n == 6
    assert one.decisions.equals(two.decisions)


@pytest.mark.slow
def test_memory_cache_round_trip(model: SentenceTransformerEmbedder) -> None:
    counting = Counting(model)
    emb = CachedEmbedder(counting, MemoryCache())
    a = emb.embed(pa.array(PARAPHRASES[:3]))
    b = emb.embed(pa.array(PARAPHRASES[:3]))
    assert counting.n == 3
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_int8_backend_agrees_with_fp32(model: SentenceTransformerEmbedder) -> None:
    int8 = SentenceTransformerEmbedder(progress=False, backend="torch-int8")
    assert int8.model_id == "all-MiniLM-L6-v2@256+int8" != model.model_id
    x = model.embed(pa.array(PARAPHRASES))
    y = int8.embed(pa.array(PARAPHRASES))
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    # measured 0.981-0.986 on these six (per-tensor weight scales gave 0.951-0.964)
    assert (np.sum(x * y, axis=1) >= 0.95).all()
    # each paraphrase's nearest other sentence is its pair, as with fp32
    sims = y @ y.T
    np.fill_diagonal(sims, -1.0)
    assert sims.argmax(axis=1)[[0, 2, 3, 4]].tolist() == [2, 0, 4, 3]


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="backend"):
        SentenceTransformerEmbedder(progress=False, backend="onnx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CPU"):
        SentenceTransformerEmbedder(progress=False, backend="torch-int8", device="cuda")
