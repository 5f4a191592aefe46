"""A tiny randomly initialised Llama with a real byte-level BPE tokenizer.

Unit tests need a causal LM that trains in milliseconds per step and needs no download. The
tokenizer is trained here on the bundled sample dialogues (or a short built-in text when those
are absent), so chat text tokenises into real subwords and the Zephyr template renders as it
would for a real model. The result is saved once to a cache folder and reused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

TINY_VERSION = "v1"
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
CACHE_ENV = "CURATE_MODEL_CACHE"
_SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
_FALLBACK_TEXT = (
    "The user asks a question and the assistant answers it helpfully and honestly. "
    "Explain, describe, compare, list, write, summarise, translate, calculate."
)


def model_cache_dir() -> Path:
    """Where generated models live: $CURATE_MODEL_CACHE, else ~/.cache/curate/models."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "curate" / "models"


def _corpus() -> list[str]:
    texts: list[str] = []
    for name in ("ultrachat_200k_sample.jsonl", "ultrafeedback_binarized_sample.jsonl"):
        path = _SAMPLES / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                for message in record.get("messages") or []:
                    texts.append(str(message.get("content", "")))
    return texts or [_FALLBACK_TEXT]


def build_tiny_model(target: Path, vocab_size: int = 2048, seed: int = 0) -> Path:
    """Write a tiny random Llama and its tokenizer to `target` (a Hugging Face folder)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=2048,
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(target)
    return target


def ensure_tiny_model(cache_dir: Path | None = None) -> Path:
    """The tiny model's folder, building it on first use."""
    target = (cache_dir or model_cache_dir()) / f"tiny-random-llama-{TINY_VERSION}"
    if not (target / "config.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        build_tiny_model(target)
    return target
