"""The typed non-trainer parts of a recipe: which model to load and how to read the snapshot.

The handbook splits a recipe into model, data and trainer arguments. Trainer arguments go
straight to TRL's SFTConfig / DPOConfig (TRL validates them); the other two are ours, so they
are pydantic models that reject unknown fields and wrong types with the key's name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SMOLLM2 = "builtin:smollm2-135m-instruct"
TINY = "builtin:tiny-random-llama"


class ModelSettings(BaseModel):
    """What to load: a hub id, a local folder or .gguf file, or a builtin: alias."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_name_or_path: str = SMOLLM2
    model_revision: str | None = None
    tokenizer_name_or_path: str | None = None
    gguf_file: str | None = None
    dtype: str | None = Field(default=None, description="auto, float32, bfloat16, float16")
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    # LoRA / QLoRA through peft (handbook / TRL ModelConfig names).
    use_peft: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | str | None = None
    lora_modules_to_save: list[str] | None = None
    lora_task_type: str = "CAUSAL_LM"
    use_rslora: bool = False
    use_dora: bool = False
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    use_bnb_nested_quant: bool = False


class DataSettings(BaseModel):
    """How the snapshot becomes trainer input."""

    model_config = ConfigDict(extra="forbid")

    chat_template: str = Field(
        default="zephyr",
        description="'zephyr' (the Zephyr template), 'model' (the tokenizer's own) "
        "or a Jinja template string",
    )
    auto_insert_empty_system_msg: bool | None = Field(
        default=None, description="default: true with the Zephyr template, as the handbook did"
    )
    train_split: str | None = None
    eval_split: str | None = Field(
        default=None, description="default: the snapshot's test split; 'none' skips evaluation"
    )
    max_train_samples: int | None = Field(default=None, ge=1)
    max_eval_samples: int | None = Field(default=None, ge=1)


MODEL_KEYS = frozenset(ModelSettings.model_fields)
DATA_KEYS = frozenset(DataSettings.model_fields)
