"""Recipe steps -> filter objects, with the embedder the step asks for.

Filters that embed (semantic dedup, decontamination with embeddings) take an embedder in
their constructor; here it is built once per model config and wrapped in a cache that reads
the warehouse's embedding table and writes new vectors only when the runner flushes it (a
run computes on read-only connections and takes the write lock only to commit).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import ValidationError

from curation.recipe import DedupStep, EmbedderConfig, FilterStep, TransformStep, step_name
from filters import Filter, load_filter
from filters.embed import CachedEmbedder, Embedder, SentenceTransformerEmbedder
from filters.scope import Scope
from warehouse.embedding_cache import EmbeddingCache
from warehouse.errors import BadInputError
from warehouse.store import Warehouse

FilterLike = FilterStep | TransformStep | DedupStep


def filter_ref(step: FilterLike) -> str:
    if isinstance(step, FilterStep):
        return step.filter
    if isinstance(step, TransformStep):
        return step.transform
    return step.dedup


class DeferredEmbeddingCache:
    """Reads stored vectors now; keeps new ones until `flush` writes them in one go."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.store = EmbeddingCache(warehouse)
        self.pending: list[tuple[str, pa.Array, np.ndarray]] = []

    def get(self, model_id: str, hashes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        return self.store.get(model_id, hashes)

    def put(self, model_id: str, hashes: pa.Array, vectors: np.ndarray) -> None:
        self.pending.append((model_id, hashes, vectors))

    def flush(self) -> int:
        n = 0
        if self.pending:
            with self.store.warehouse.write() as con:
                writer = EmbeddingCache(self.store.warehouse, connection=con)
                for model_id, hashes, vectors in self.pending:
                    writer.put(model_id, hashes, vectors)
                    n += len(hashes)
        self.pending.clear()
        return n


class FilterFactory:
    """Builds each step's filter; embedders are shared between steps with the same config."""

    def __init__(self, warehouse: Warehouse, progress: bool = True) -> None:
        self.warehouse = warehouse
        self.progress = progress
        self.cache = DeferredEmbeddingCache(warehouse)
        self._embedders: dict[EmbedderConfig, Embedder] = {}

    def embedder(self, cfg: EmbedderConfig | None) -> Embedder:
        cfg = cfg or EmbedderConfig()
        if cfg not in self._embedders:
            inner = SentenceTransformerEmbedder(
                cfg.model,
                batch_size=cfg.batch_size,
                max_seq_length=cfg.max_seq_length,
                backend=cfg.backend,
                progress=self.progress,
            )
            self._embedders[cfg] = CachedEmbedder(inner, self.cache)
        return self._embedders[cfg]

    def build(self, step: FilterLike) -> Filter:
        ref = filter_ref(step)
        name = step_name(step)
        try:
            cls = load_filter(ref)
        except (ValueError, TypeError, ImportError, AttributeError) as exc:
            raise BadInputError(f"step {name}: cannot load filter {ref!r}: {exc}") from exc
        params = dict(step.params)
        kwargs: dict[str, Any] = {}
        init = inspect.signature(cls.__init__).parameters
        if "name" in init:
            kwargs["name"] = name
        if "scope" in init and "scope" in params:
            try:
                kwargs["scope"] = Scope(params.pop("scope"))
            except ValueError as exc:
                raise BadInputError(f"step {name}: {exc}") from exc
        try:
            typed = cls.Params(**params)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise BadInputError(f"step {name}: params.{loc}: {first['msg']}") from exc
        if "embedder" in init:
            wants = getattr(typed, "use_embeddings", True)
            emb_cfg = getattr(step, "embedder", None)
            kwargs["embedder"] = self.embedder(emb_cfg) if wants else None
        return cls(params=typed, **kwargs)

    def model_versions(self, steps: list[FilterLike]) -> dict[str, str]:
        """step name -> embedding model id, for the steps that embed."""
        out = {}
        for step in steps:
            f = self.build(step)
            emb = getattr(f, "embedder", None)
            if emb is not None:
                out[step_name(step)] = emb.model_id
        return out
