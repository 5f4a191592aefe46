"""Loading the model and tokenizer, and the optional LoRA / QLoRA adapter config.

Models are loaded here (not by TRL from a name) so GGUF files, revisions, dtypes and 4-bit
loading go through one path, and so DPO can get its frozen reference model as a copy of the
policy instead of a second 30-second GGUF load.
"""

from __future__ import annotations

import copy
from typing import Any

from training.model_source import ModelSource
from training.settings import ModelSettings
from warehouse.errors import BadInputError

_DTYPES = {"float32", "bfloat16", "float16", "auto"}


def _common_kwargs(source: ModelSource, settings: ModelSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"trust_remote_code": settings.trust_remote_code}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    if source.revision and not source.is_local:
        kwargs["revision"] = source.revision
    return kwargs


def model_init_kwargs(source: ModelSource, settings: ModelSettings) -> dict[str, Any]:
    """Keyword arguments for AutoModelForCausalLM.from_pretrained (also used for a reference)."""
    kwargs = _common_kwargs(source, settings)
    if settings.dtype is not None:
        if settings.dtype not in _DTYPES:
            raise BadInputError(
                f"dtype {settings.dtype!r}: expected one of {', '.join(sorted(_DTYPES))}"
            )
        kwargs["dtype"] = settings.dtype
    if settings.attn_implementation:
        kwargs["attn_implementation"] = settings.attn_implementation
    if source.gguf_file:
        from transformers import GgufConfig

        # Unpack the GGUF blocks into plain dense weights: a packed model cannot be trained.
        kwargs["quantization_config"] = GgufConfig(gguf_file=source.gguf_file, dequantize=True)
    if settings.load_in_4bit or settings.load_in_8bit:
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=settings.load_in_4bit,
            load_in_8bit=settings.load_in_8bit,
            bnb_4bit_quant_type=settings.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=settings.use_bnb_nested_quant,
            bnb_4bit_compute_dtype=getattr(torch, settings.dtype or "bfloat16", torch.bfloat16),
        )
    return kwargs


def load_tokenizer(source: ModelSource, settings: ModelSettings) -> Any:
    from transformers import AutoTokenizer

    name = settings.tokenizer_name_or_path or source.path
    kwargs = _common_kwargs(source, settings) if settings.tokenizer_name_or_path is None else {}
    try:
        return AutoTokenizer.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot load the tokenizer of {source.label}: {exc}") from exc


def load_model(source: ModelSource, settings: ModelSettings) -> Any:
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(
            source.path, **model_init_kwargs(source, settings)
        )
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot load model {source.label}: {exc}") from exc


def reference_copy(model: Any) -> Any:
    """A frozen copy of the policy for DPO (TRL cannot rebuild one from an in-memory model)."""
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def lora_config(settings: ModelSettings) -> Any:
    """A peft LoraConfig when use_peft is on, else None."""
    if not settings.use_peft:
        return None
    from peft import LoraConfig

    targets = settings.lora_target_modules
    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets if targets else "all-linear",
        modules_to_save=settings.lora_modules_to_save,
        task_type=settings.lora_task_type,
        use_rslora=settings.use_rslora,
        use_dora=settings.use_dora,
    )
