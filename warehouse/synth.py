"""Deterministic synthetic UltraChat / UltraFeedback data with planted defects and ground truth.

Why: the filters (persona, dedup, near-dup, decontamination, truecasing) need data at full scale
(1.47M dialogues, 64k prompts) whose defects are known exactly, so precision and recall can be
measured without the real dumps.

Files written to ``out_dir``:

* ``ultrachat_raw.jsonl``: ``{"id":"<n>","data":[user, assistant, ...]}`` per line (compact JSON,
  UTF-8, the raw UltraChat layout). ``id`` is the 0-based line number as a string.
* ``ultrafeedback_raw.jsonl``: openbmb/UltraFeedback records (4 completions each). They have no id
  field; their ``record_id`` in the ground truth is the 0-based line number as a string.
* ``ground_truth.parquet``: one row per planted item (clean records have no row):
  ``dataset, record_id, plant, target_id, turn_index, detail`` (``detail`` is JSON). For
  UltraChat ``turn_index`` indexes ``data``; for ``score_bug`` it is the completion index.
* ``manifest.json``: config, counts per plant, sha256 and size of each file, seconds. It is the
  only file that differs between two runs of one config (it holds the timing).

Plants. UltraChat: ``exact_dup``, ``near_dup`` (target_id = original), ``persona``,
``persona_negative`` (hard negatives: persona phrases in user turns, or assistant turns that
only discuss AI without any persona phrase), ``lowercase`` (truecasing targets), ``benchmark``
(first user turn is an MT-Bench/Vicuna/AlpacaEval/TruthfulQA prompt). UltraFeedback:
``score_bug`` (overall_score 10 with a negative critique and fine-grained score <= 2),
``truthfulqa_leak`` (a TruthfulQA question as the instruction of another source) and
``truthfulqa_source`` (the legitimate truthful_qa-source rows, listed so that a
decontamination filter's hits are all accounted for).

Guarantees the filters can rely on: base text never contains a persona phrase, a lower-case
sentence start, a standalone " i ", or a duplicate/near-duplicate outside the planted ones;
plants never overlap on one dialogue; duplicate targets are clean records that come earlier in
the file. Benchmark items that themselves contain a lower-case sentence start or a standalone
"i" are never planted, so the truecasing ground truth stays exact.

Text is built from a fixed synthetic vocabulary with numpy byte gathers (no Python loop per
dialogue); only the planted/edited few percent of rows go through Python. The output depends on
every config field, ``block_size`` included (each block has its own random stream).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

__all__ = ["SynthConfig", "SynthResult", "build_profile", "generate"]

_REPO = Path(__file__).resolve().parents[1]
PROFILE_PATH = Path(__file__).resolve().parent / "data" / "synth_profile.json"
DEFAULT_BENCHMARK_DIR = _REPO / "data" / "benchmarks"

UC_PLANTS = ("exact_dup", "near_dup", "persona", "persona_negative", "lowercase", "benchmark")
UF_PLANTS = ("score_bug", "truthfulqa_leak", "truthfulqa_source")

UF_SOURCES = ("evol_instruct", "false_qa", "flan", "sharegpt", "truthful_qa", "ultrachat")
UF_SOURCE_MIX = (10000, 2339, 20939, 19997, 811, 9929)
UF_MODELS = (
    "alpaca-7b",
    "bard",
    "falcon-40b-instruct",
    "gpt-3.5-turbo",
    "gpt-4",
    "llama-2-13b-chat",
    "llama-2-70b-chat",
    "llama-2-7b-chat",
    "mpt-30b-chat",
    "pythia-12b",
    "starchat",
    "ultralm-13b",
    "ultralm-65b",
    "vicuna-33b",
    "wizardlm-13b",
    "wizardlm-70b",
    "wizardlm-7b",
)
# Mean latent quality (1-5) per model, so ratings differ by model as they do upstream.
_MODEL_QUALITY = (
    2.5,
    3.8,
    2.8,
    4.0,
    4.5,
    3.4,
    3.7,
    3.2,
    3.3,
    2.0,
    2.9,
    3.3,
    3.6,
    3.6,
    3.5,
    3.9,
    3.0,
)
UF_PRINCIPLES = ("helpfulness", "honesty", "truthfulness", "verbalized_calibration")
_PRINCIPLE_P = (0.4, 0.2, 0.2, 0.2)

# Canonical persona phrases, and the surface forms planted for each (case and apostrophe vary).
PERSONA_PHRASES: dict[str, tuple[str, ...]] = {
    "As an AI language model": (
        "As an AI language model",
        "As an AI Language Model",
        "As an ai language model",
        "AS AN AI LANGUAGE MODEL",
    ),
    "I do not have emotions": (
        "I do not have emotions",
        "I do not have Emotions",
        "I DO NOT HAVE EMOTIONS",
    ),
    "I don't have personal opinions": (
        "I don't have personal opinions",
        "I don’t have personal opinions",
        "I DON'T have personal opinions",
    ),
    "I don't have personal experiences": (
        "I don't have personal experiences",
        "I don’t have personal experiences",
        "I don't have Personal Experiences",
    ),
    "I'm just an AI": ("I'm just an AI", "I’m just an AI", "I'm just an ai", "I’M JUST AN AI"),
    "I cannot browse the internet": (
        "I cannot browse the internet",
        "I cannot browse the Internet",
        "I CANNOT browse the internet",
    ),
    "As an artificial intelligence, I don't have feelings": (
        "As an artificial intelligence, I don't have feelings",
        "As an artificial intelligence, I don’t have feelings",
        "As an Artificial Intelligence, I don't have feelings",
    ),
}
_PERSONA_KEYS = tuple(PERSONA_PHRASES)
_PERSONA_AFTER = (", ", ". ", "; ", " - ", ": ", "! ")
_LEAD_INS = ("Honestly, ", "Well, ", "To be clear, ", "However, ", "Of course, ")

# Hard negatives. User turns quoting a persona phrase ({p}: a surface form, {w}: random words).
_USER_NEG = (
    "{p}, what do you think about {w}?",
    'If you answer "{p}", how would you still rank {w}?',
    'My friend keeps saying "{p}" when asked about {w}; what does that mean?',
    'Start your answer with "{p}" and then describe {w}.',
)
# User turns where the phrase is the user's own statement (only phrases that read naturally).
_USER_OWN = {
    "I do not have emotions": "I do not have emotions about {w}, so can you explain it neutrally?",
    "I don't have personal opinions": "I don't have personal opinions on {w}; which side is stronger?",
    "I don't have personal experiences": "I don't have personal experiences with {w}; what should I know?",
    "I cannot browse the internet": "I cannot browse the internet at work, so can you summarize {w}?",
}
# Assistant sentences that discuss AI but contain no persona phrase (checked at import).
_ASSISTANT_NEG = (
    "Researchers debate whether an AI language model can have emotions, and {w}.",
    "Critics of chatbots note that some assistants cannot browse the web, which affects {w}.",
    "Public opinion about artificial intelligence varies widely, especially around {w}.",
    "A common question is whether machines hold personal opinions about {w}.",
    "Philosophers ask if software could ever feel emotions while {w}.",
    "Many articles describe how a large language model is trained on {w}.",
    "Some people say that chatbots are only an AI tool for {w}.",
)


def _norm(text: str) -> str:
    """Lower-case and unify apostrophes: how a persona filter should compare phrases."""
    return text.lower().replace("’", "'")


_PERSONA_NORM = tuple(_norm(p) for p in PERSONA_PHRASES)
assert not any(p in _norm(t) for t in _ASSISTANT_NEG for p in _PERSONA_NORM)


# --------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------

_QLEVELS = np.linspace(0.0, 100.0, 101)


def _quantiles(values: Sequence[int]) -> list[int]:
    return [round(float(q)) for q in np.percentile(np.asarray(values, dtype=np.float64), _QLEVELS)]


def build_profile(sample_jsonl: Path) -> dict[str, Any]:
    """Length distributions of real ultrachat_200k-format records (no text kept).

    Stored as 101 quantiles per distribution, so the profile is a few KB and the generator can
    sample by inverse CDF.
    """
    n_messages: dict[int, int] = {}
    first_user: list[int] = []
    user: list[int] = []
    assistant: list[int] = []
    sentence_words: list[int] = []
    word_chars: list[int] = []
    n_records = 0
    with Path(sample_jsonl).open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            messages = orjson.loads(line)["messages"]
            n_records += 1
            n_messages[len(messages)] = n_messages.get(len(messages), 0) + 1
            for i, msg in enumerate(messages):
                text: str = msg["content"]
                if msg["role"] == "user":
                    (first_user if i == 0 else user).append(len(text))
                else:
                    assistant.append(len(text))
                for sent in re.split(r"(?<=[a-z)][.?!])\s+(?=[A-Z])|\n+", text):
                    words = sent.split()
                    if words:
                        sentence_words.append(len(words))
                        word_chars.extend(len(w.strip(".,;:!?\"'()")) for w in words)
    if not n_records:
        raise ValueError(f"no records in {sample_jsonl}")
    wc = np.bincount(np.clip(np.asarray(word_chars), 0, 20), minlength=21)
    keys = sorted(n_messages)
    return {
        "format": "ultrachat_200k",
        "source": Path(sample_jsonl).name,
        "records": n_records,
        "messages_per_dialogue": {"values": keys, "counts": [n_messages[k] for k in keys]},
        "quantile_levels": "0..100 step 1",
        "first_user_chars": _quantiles(first_user),
        "user_chars": _quantiles(user or first_user),
        "assistant_chars": _quantiles(assistant),
        "sentence_words": _quantiles(sentence_words),
        "word_chars_hist": [int(x) for x in wc],
    }


def _load_profile() -> dict[str, Any]:
    if not PROFILE_PATH.exists():
        raise FileNotFoundError(
            f"{PROFILE_PATH} missing: run python -m warehouse.synth --build-profile <sample.jsonl>"
        )
    profile: dict[str, Any] = json.loads(PROFILE_PATH.read_text())
    return profile


def _inverse_cdf(rng: np.random.Generator, quantiles: Sequence[float], n: int) -> np.ndarray:
    """Sample ``n`` values from a distribution given by 101 quantiles (piecewise linear)."""
    return np.interp(rng.random(n) * 100.0, _QLEVELS, np.asarray(quantiles, dtype=np.float64))


# --------------------------------------------------------------------------------------------
# Vocabulary and vectorised text generation
# --------------------------------------------------------------------------------------------

# Real function words get the top Zipf ranks; no "I"/"i" and no word of a persona phrase, so
# base text can never contain a persona phrase or a standalone lower-case "i".
_FUNCTION_WORDS = (
    "the of and to in is that for it with as on be are this by from or can an at which have will "
    "more also their these not but you your we our they has may was its other such about into how "
    "what when all some each most many one two new use used using help make time work well data "
    "people part way first important different between through during over only both because "
    "than then there where while these those very often much any every should could would must "
    "provide include including based system process results support level high low small large "
    "public local global team project design group report plan area field market value number "
    "rate power water energy health care study research school city company service product "
    "quality history culture future present common early late key main major"
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FORBIDDEN = frozenset(
    _words("i ai a.i emotions feelings opinions experiences browse internet artificial")
    + _words("intelligence language model just cannot")
)
_ONSETS = _words("b c d f g h j k l m n p r s t v w z br cl dr fl gr pl pr sh st th tr ch sp")
_ONSETS += _words("bl cr gl sl sn")
_VOWELS = _words("a e i o u a e o ai ea ou io ie")
_CODAS = ("", "", "", "n", "r", "s", "l", "t", "m", "nd", "st", "rt", "ck", "th")
_ENDINGS = ("",) * 10 + ("tion", "ment", "ness", "ity", "al", "ive", "ing", "ed", "er", "ous")
_VOCAB_SIZE = 4000
_N_PROPER = 120
_MAX_WORD = 11
_SUFFIXES = ("", ",", ".", "?", ":")
_PREFIXES = ("\n\n", "\n- ", *(f"\n{j}. " for j in range(1, 10)))
# JSON framing tokens of a raw UltraChat line, and their indices.
_FRAMING = ('{"id":"', '","data":["', '","', '"]}\n', *"0123456789")
_OPEN_ID, _OPEN_DATA, _SEP, _CLOSE, _DIGIT0 = range(5)
_TABLE_BITS = 16
_SUB_WORDS = 1 << 22  # words per vectorised sub-batch (bounds temporaries to ~40 MB each)


def _json_escape(text: str) -> str:
    """JSON string-body escaping for the characters the token table can contain."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _build_vocab() -> tuple[list[str], np.ndarray, int]:
    """Fixed (seed-independent) vocabulary: words in Zipf rank order, proper-noun mask, and the
    number of leading real function words."""
    rng = np.random.Generator(np.random.PCG64(20240611))
    words: list[str] = []
    seen: set[str] = set()
    for w in _FUNCTION_WORDS.split():
        w = w.rstrip("_")
        if w not in seen and w not in _FORBIDDEN:
            seen.add(w)
            words.append(w)
    n_function = len(words)
    while len(words) < _VOCAB_SIZE:
        n_syl = int(rng.choice([1, 1, 2, 2, 2, 3]))
        parts = [
            _ONSETS[int(rng.integers(len(_ONSETS)))] + _VOWELS[int(rng.integers(len(_VOWELS)))]
            for _ in range(n_syl)
        ]
        w = "".join(parts) + _CODAS[int(rng.integers(len(_CODAS)))]
        w += _ENDINGS[int(rng.integers(len(_ENDINGS)))]
        if 3 <= len(w) <= _MAX_WORD and w not in seen and w not in _FORBIDDEN:
            seen.add(w)
            words.append(w)
    proper = np.zeros(len(words), dtype=bool)
    proper[rng.choice(np.arange(n_function + 50, len(words)), _N_PROPER, replace=False)] = True
    return words, proper, n_function


class _TextGen:
    """English-looking text from the fixed vocabulary, assembled as bytes without Python loops.

    Every token (word x leading space x capital x trailing punctuation, a paragraph/list prefix,
    or a piece of JSON framing) is one entry of a token table; a text is a stream of token ids
    and its bytes are one Arrow ``take`` over the table. Decisions per sentence (lists, question
    marks, paragraphs) are made on small per-sentence arrays and scattered into the stream.
    """

    def __init__(self, profile: dict[str, Any]) -> None:
        self.words, self.proper, n_function = _build_vocab()
        v = self.n_words = len(self.words)
        p = (np.arange(v, dtype=np.float64) + 2.7) ** -1.0
        p /= p.sum()
        grid = (np.arange(1 << _TABLE_BITS) + 0.5) / (1 << _TABLE_BITS)
        zipf = np.minimum(np.searchsorted(np.cumsum(p), grid), v - 1)
        tokens: list[str] = []  # words and prefixes (JSON-escaped in the escaped table)
        for space in (0, 1):
            for cap in (0, 1):
                for suf in _SUFFIXES:
                    for w, is_proper in zip(self.words, self.proper, strict=True):
                        word = w.capitalize() if (cap or is_proper) else w
                        tokens.append((" " if space else "") + word + suf)
        self.prefix_base = len(tokens)
        tokens.extend(_PREFIXES)
        self.frame_base = len(tokens)
        self.tables: dict[bool, pa.LargeBinaryArray] = {}
        for escaped in (False, True):
            enc = [(_json_escape(t) if escaped else t).encode() for t in tokens]
            # JSON framing is already JSON; plain texts never use it.
            enc += [f.encode() if escaped else b"" for f in _FRAMING]
            arr = pa.array(enc, pa.large_binary())
            assert isinstance(arr, pa.LargeBinaryArray)
            self.tables[escaped] = arr
        # Zipf draw -> the word's default token: leading space, capital only for proper nouns.
        base_tok = (2 + self.proper.astype(np.int64)) * len(_SUFFIXES) * v + np.arange(v)
        self.zipf_tok = base_tok[zipf].astype(np.int32)
        # Sentence lengths (words): inverse-CDF lookup table of the profile quantiles.
        sentence_q = np.clip(np.asarray(profile["sentence_words"], dtype=np.float64), 4, 40)
        grid = (np.arange(4096) + 0.5) / 4096 * 100.0
        self.sentence_lut = np.rint(np.interp(grid, _QLEVELS, sentence_q)).astype(np.int64)
        # Expected characters per generated word, to turn a target char length into words.
        word_len = np.array([len(w) for w in self.words], dtype=np.float64)
        self.chars_per_word = float((p * word_len).sum()) + 1.0 + 0.15
        # Pseudo-words only: identifiers, edits and fresh phrases never form real-word n-grams.
        self.content = np.flatnonzero(~self.proper & (np.arange(v) >= n_function))

    # ---- Python-level helpers for the planted rows ------------------------------------------

    def phrase(self, rng: np.random.Generator, k: int) -> str:
        """``k`` random lower-case pseudo-words (fresh text for plants and annotations)."""
        idx = self.content[rng.integers(0, len(self.content), size=k)]
        return " ".join([self.words[i] for i in idx])

    def sentence(self, rng: np.random.Generator, k: int) -> str:
        """A capitalised sentence of ``k`` pseudo-words ending with a period."""
        return self.phrase(rng, k).capitalize() + "."

    def word(self, rng: np.random.Generator) -> str:
        return self.words[int(self.content[rng.integers(0, len(self.content))])]

    # ---- vectorised bulk generation -------------------------------------------------------------

    def words_for_chars(self, chars: np.ndarray, minimum: int) -> np.ndarray:
        return np.maximum(np.rint(chars / self.chars_per_word), minimum).astype(np.int32)

    def texts(
        self, rng: np.random.Generator, n_words: np.ndarray, assistant: np.ndarray
    ) -> pa.LargeStringArray:
        """One plain string per entry of ``n_words``, styled as an assistant or a user turn."""
        data, off = self._render(rng, n_words, assistant, np.ones(len(n_words), np.int64), None)
        arr = pa.Array.from_buffers(
            pa.large_string(), len(n_words), [None, pa.py_buffer(off), pa.py_buffer(data)]
        )
        assert isinstance(arr, pa.LargeStringArray)
        return arr

    def json_lines(
        self, rng: np.random.Generator, n_words: np.ndarray, n_msgs: np.ndarray, first_id: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw UltraChat lines ``{"id":"<n>","data":[...]}\\n`` (bytes, line offsets).

        The bytes equal ``orjson.dumps`` of the same record, so planted lines re-encoded by
        orjson splice in seamlessly.
        """
        local = np.arange(len(n_words), dtype=np.int64) - np.repeat(
            np.cumsum(n_msgs) - n_msgs, n_msgs
        )
        return self._render(rng, n_words, local % 2 == 1, n_msgs.astype(np.int64), first_id)

    def _render(
        self,
        rng: np.random.Generator,
        n_words: np.ndarray,
        assistant: np.ndarray,
        units: np.ndarray,
        first_id: int | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bytes and unit offsets, in sub-batches of whole units (turns or dialogues)."""
        turn_off = np.zeros(len(units) + 1, dtype=np.int64)
        np.cumsum(units, out=turn_off[1:])
        word_cum = np.zeros(len(n_words) + 1, dtype=np.int64)
        np.cumsum(n_words, out=word_cum[1:])
        unit_words = word_cum[turn_off]
        datas: list[np.ndarray] = []
        offsets = [np.zeros(1, dtype=np.int64)]
        base = 0
        lo = 0
        while lo < len(units):
            hi = int(np.searchsorted(unit_words, unit_words[lo] + _SUB_WORDS, side="right")) - 1
            hi = min(max(hi, lo + 1), len(units))
            t0, t1 = int(turn_off[lo]), int(turn_off[hi])
            data, off = self._render_sub(
                rng,
                n_words[t0:t1].astype(np.int64),
                assistant[t0:t1],
                units[lo:hi],
                None if first_id is None else first_id + lo,
            )
            datas.append(data)
            offsets.append(off[1:] + base)
            base += len(data)
            lo = hi
        data_all = np.concatenate(datas) if datas else np.zeros(0, dtype=np.uint8)
        return data_all, np.concatenate(offsets)

    def _render_sub(
        self,
        rng: np.random.Generator,
        nw: np.ndarray,
        assistant: np.ndarray,
        units: np.ndarray,
        first_id: int | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        m = len(nw)
        if m == 0:
            return np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64)
        v = self.n_words
        n_suf = len(_SUFFIXES)
        tstart = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(nw, out=tstart[1:])
        total = int(tstart[-1])
        # Words: one 32-bit draw each; the high bits pick the word's default token (Zipf), the
        # low bits add a comma to ~6% of words.
        r = rng.integers(0, 1 << 32, size=total, dtype=np.uint32)
        idx = r >> (32 - _TABLE_BITS)
        tok = self.zipf_tok[idx]
        for shift in (1 << (_TABLE_BITS - 1), (1 << _TABLE_BITS) // 3):  # no "the the"
            same = np.flatnonzero(tok[1:] == tok[:-1]) + 1
            idx[same] = (idx[same] + shift) % (1 << _TABLE_BITS)
            tok[same] = self.zipf_tok[idx[same]]
        tok += ((r & 0xFFFF) < 3932).astype(np.int32) * v
        del r
        # Sentences: a stream of profile sentence lengths cut at turn ends, with no fragment
        # shorter than 3 words at either end of a turn.
        lens = self.sentence_lut[rng.integers(0, len(self.sentence_lut), size=total // 4 + 2)]
        ends = np.cumsum(lens) - 1
        ends = ends[ends < total]
        e_tid = np.searchsorted(tstart, ends, side="right") - 1
        e_pos = ends - tstart[e_tid]
        ends = ends[(e_pos >= 2) & (nw[e_tid] - e_pos - 1 >= 3)]
        se = np.sort(np.concatenate([ends, tstart[1:] - 1]))
        se = se[np.concatenate([[True], se[1:] != se[:-1]])]
        ss = np.concatenate([[0], se[:-1] + 1])
        s_tid = np.searchsorted(tstart, ss, side="right") - 1
        s_first = np.searchsorted(s_tid, np.arange(m))
        n_sent = np.diff(np.append(s_first, len(ss)))
        sin = np.arange(len(ss)) - s_first[s_tid]
        # Lists in some assistant turns: items get "\n1. " / "\n- " prefixes, a colon before.
        u = rng.random((4, m))
        has_list = assistant & (n_sent >= 6) & (u[0] < 0.2)
        s0 = 1 + np.floor(u[1] * np.maximum(n_sent - 4, 1)).astype(np.int64)
        k = 3 + np.floor(u[2] * np.maximum(np.minimum(7, n_sent - s0) - 2, 1)).astype(np.int64)
        numbered = u[3] < 0.6
        listed = has_list[s_tid]
        j = sin - s0[s_tid]
        in_list = listed & (j >= 0) & (j < k[s_tid])
        is_asst = assistant[s_tid]
        rs = rng.random((2, len(ss)))
        pcode = np.zeros(len(ss), dtype=np.int64)
        para = (
            (sin > 0)
            & ~in_list
            & ((rs[0] < np.where(is_asst, 0.15, 0.04)) | (listed & (j == k[s_tid])))
        )
        pcode[para] = 1
        pcode[in_list] = np.where(numbered[s_tid], 3 + j, 2)[in_list]
        last_sent = sin == n_sent[s_tid] - 1
        p_q = np.where(is_asst, 0.02, np.where(last_sent, 0.5, 0.08))
        endsuf = np.where((rs[1] < p_q) & ~in_list, 3, 2)
        endsuf[listed & (sin == s0[s_tid] - 1)] = 4
        # Sentence ends, then starts (a one-word sentence keeps its end punctuation).
        we = tok[se] % v
        tok[se] = ((2 + self.proper[we]) * n_suf + endsuf) * v + we
        wsn = tok[ss] % v
        suf_s = np.where(ss == se, endsuf, (tok[ss] // v) % n_suf)
        space_s = ((sin > 0) & (pcode == 0)).astype(np.int64)
        tok[ss] = ((space_s * 2 + 1) * n_suf + suf_s) * v + wsn
        # Insertions: list/paragraph prefixes, and JSON framing around dialogues and turns.
        ins_pos = [ss[pcode > 0]]
        ins_val = [self.prefix_base + pcode[pcode > 0] - 1]
        ins_key = [np.full(int((pcode > 0).sum()), 60)]
        if first_id is not None:
            ins_pos_f, ins_val_f, ins_key_f = self._framing(tstart, units, first_id)
            ins_pos.append(ins_pos_f)
            ins_val.append(ins_val_f)
            ins_key.append(ins_key_f)
        pos_all = np.concatenate(ins_pos)
        order = np.lexsort((np.concatenate(ins_key), pos_all))
        pos_sorted = pos_all[order]
        vals = np.concatenate(ins_val)[order].astype(np.int32)
        out = np.insert(tok, pos_sorted, vals)
        taken = self.tables[first_id is not None].take(pa.array(out))
        csum = np.frombuffer(taken.buffers()[1], dtype=np.int64, count=len(out) + 1)[1:]
        if first_id is None:
            last = tstart[1:] - 1
            fin = last + np.searchsorted(pos_sorted, last, side="right")
        else:  # the closing token of each dialogue sits at its insertion rank + position
            close = np.flatnonzero(vals == self.frame_base + _CLOSE)
            fin = pos_sorted[close] + close
        off = np.zeros(len(fin) + 1, dtype=np.int64)
        off[1:] = csum[fin]
        data = np.frombuffer(taken.buffers()[2], dtype=np.uint8, count=int(off[-1]))
        return data, off

    def _framing(
        self, tstart: np.ndarray, units: np.ndarray, first_id: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Insertions that wrap turns into ``{"id":"<n>","data":["...","..."]}\\n`` lines."""
        fb = self.frame_base
        n_d = len(units)
        d_turn = np.zeros(n_d + 1, dtype=np.int64)
        np.cumsum(units, out=d_turn[1:])
        d_start = tstart[d_turn[:-1]]
        d_end = tstart[d_turn[1:]]
        ids = np.arange(first_id, first_id + n_d, dtype=np.int64)
        n_dig = 1 + np.searchsorted(10 ** np.arange(1, 19, dtype=np.int64), ids, side="right")
        # Opening: {"id":" + digits + ","data":[" ; keys 1.. keep them in order at one spot.
        dig_d = np.repeat(np.arange(n_d), n_dig)
        dig_k = np.arange(len(dig_d)) - np.repeat(np.cumsum(n_dig) - n_dig, n_dig)
        power = 10 ** (n_dig[dig_d] - 1 - dig_k)
        digits = (ids[dig_d] // power) % 10
        # Separators between turns of a dialogue.
        turn_first = np.zeros(len(tstart) - 1, dtype=bool)
        turn_first[d_turn[:-1]] = True
        sep_pos = tstart[:-1][~turn_first]
        pos = np.concatenate([d_start, d_start[dig_d], d_start, sep_pos, d_end])
        val = np.concatenate(
            [
                np.full(n_d, fb + _OPEN_ID),
                fb + _DIGIT0 + digits,
                np.full(n_d, fb + _OPEN_DATA),
                np.full(len(sep_pos), fb + _SEP),
                np.full(n_d, fb + _CLOSE),
            ]
        )
        key = np.concatenate(
            [np.full(n_d, 1), 2 + dig_k, np.full(n_d, 50), np.full(len(sep_pos), 50), np.zeros(n_d)]
        )
        return pos, val, key.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Config / result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; every field (block_size included) determines the bytes written."""

    n_dialogues: int = 10_000  # UltraChat dialogues
    n_prompts: int = 2_000  # UltraFeedback prompts (4 completions each)
    seed: int = 0
    exact_dup_rate: float = 0.01  # share of dialogues that are exact copies of another (new id)
    near_dup_rate: float = 0.01  # share that are near copies (a few word edits in 1-2 turns)
    persona_rate: float = 0.02  # share with a persona/refusal phrase in an assistant turn
    lowercase_rate: float = 0.05  # share with lower-case sentence starts (truecasing targets)
    benchmark_rate: float = 0.001  # share whose first user turn is a benchmark prompt
    benchmark_dir: Path | None = None  # default: <repo>/data/benchmarks
    block_size: int = 100_000  # dialogues generated per block (bounded memory)
    persona_negative_rate: float = 0.01  # share with a persona hard negative
    code_rate: float = 0.04  # share with a fenced code block in an assistant turn (not a plant)
    score_bug_rate: float = 0.01  # share of UltraFeedback completions with the overall_score bug
    truthfulqa_leak_rate: float = 0.005  # share of non-truthful_qa prompts that are TruthfulQA
    na_rate: float = 0.01  # share of truthfulness/helpfulness ratings that are "N/A"

    def __post_init__(self) -> None:
        if self.n_dialogues < 0 or self.n_prompts < 0 or self.block_size < 1:
            raise ValueError("n_dialogues, n_prompts must be >= 0 and block_size >= 1")
        rates = [
            getattr(self, f.name) for f in dataclasses.fields(self) if f.name.endswith("_rate")
        ]
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError("rates must lie in [0, 1]")
        if sum(self._uc_rates()) > 0.9:
            raise ValueError("UltraChat plant rates add up to more than 0.9")

    def _uc_rates(self) -> tuple[float, ...]:
        return (
            self.exact_dup_rate,
            self.near_dup_rate,
            self.persona_rate,
            self.persona_negative_rate,
            self.lowercase_rate,
            self.benchmark_rate,
        )

    def resolved_benchmark_dir(self) -> Path:
        return Path(self.benchmark_dir) if self.benchmark_dir else DEFAULT_BENCHMARK_DIR


@dataclass(frozen=True)
class SynthResult:
    ultrachat_path: Path
    ultrafeedback_path: Path
    ground_truth_path: Path
    manifest_path: Path
    counts: dict[str, int]


def _count(rate: float, n: int) -> int:
    """Exact number of planted rows for a rate (round half up, never banker's rounding)."""
    return int(np.floor(rate * n + 0.5))


def _stream(seed: int, *key: int) -> np.random.Generator:
    """Independent PCG64 stream per purpose/block, so blocks need no shared state."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


# --------------------------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BenchItem:
    benchmark: str
    item_id: int
    turn: int | None
    text: str


_LOWER_START = re.compile(r"[.?!] [a-z]")
_STANDALONE_I = re.compile(r"(?<![A-Za-z'’])i(?![A-Za-z'’])")


def _load_truthfulqa(bench_dir: Path) -> list[dict[str, str]]:
    with (bench_dir / "truthfulqa.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _load_benchmarks(bench_dir: Path) -> list[_BenchItem]:
    """All benchmark prompts that can be planted without creating truecasing targets."""
    items: list[_BenchItem] = []
    for name, fname in (
        ("mt_bench", "mt_bench_question.jsonl"),
        ("vicuna", "vicuna_bench_question.jsonl"),
    ):
        for line in (bench_dir / fname).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                for t, text in enumerate(rec["turns"], start=1):
                    items.append(_BenchItem(name, int(rec["question_id"]), t, text))
    lines = (bench_dir / "alpaca_eval_instructions.jsonl").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(x for x in lines if x.strip()):
        items.append(_BenchItem("alpaca_eval", i, None, json.loads(line)["instruction"]))
    for i, row in enumerate(_load_truthfulqa(bench_dir)):
        items.append(_BenchItem("truthfulqa", i, None, row["Question"]))
    return [
        it
        for it in items
        if it.text.strip()
        and not it.text[0].islower()
        and not _LOWER_START.search(it.text)
        and not _STANDALONE_I.search(it.text)
    ]


# --------------------------------------------------------------------------------------------
# Row-level plants (Python; only the planted few percent of rows get here)
# --------------------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"```.*?```", re.S)
_BOUNDARY = re.compile(r"(?<=[.?!]) (?=[A-Z])")
_ELIGIBLE_START = re.compile(r"(?<=[a-z]\. )[A-Z]")


def _outside_code(text: str, positions: list[int]) -> list[int]:
    if "```" not in text:
        return positions
    spans = [(m.start(), m.end()) for m in _CODE_SPAN.finditer(text)]
    return [p for p in positions if not any(a <= p < b for a, b in spans)]


def _insert_sentence(rng: np.random.Generator, text: str, sent: str, where: str) -> tuple[str, str]:
    """Put a sentence at the start, at a random prose sentence boundary ("inside"), or at the
    end; returns the new text and where it went (a one-sentence turn has no "inside")."""
    if where == "inside":
        spots = _outside_code(text, [m.start() for m in _BOUNDARY.finditer(text)])
        if spots:
            p = spots[int(rng.integers(len(spots)))]
            return text[:p] + " " + sent + text[p:], "inside"
        where = "end"
    if where == "start":
        return sent + " " + text, "start"
    return text + ("\n\n" if text.endswith("```") else " ") + sent, "end"


def _shingles(data: Sequence[str], k: int = 5) -> set[tuple[str, ...]]:
    toks = " ".join(data).split()
    return set(zip(*(toks[i:] for i in range(k)), strict=False))


def jaccard5(a: Sequence[str], b: Sequence[str]) -> float:
    """Jaccard of whitespace-token 5-gram shingles of two whole dialogues."""
    sa, sb = _shingles(a), _shingles(b)
    union = len(sa | sb)
    return len(sa & sb) / union if union else 1.0


def _code_block(rng: np.random.Generator, gen: _TextGen) -> str:
    """A short fenced code block built from fresh vocabulary words (no single-letter names)."""

    def ident() -> str:
        return gen.word(rng) + "_" + gen.word(rng)

    lang = ("python", "javascript", "bash")[int(rng.integers(3))]
    n = int(rng.integers(2, 6))
    a, b, c = ident(), gen.word(rng), gen.word(rng)
    if lang == "python":
        body = [f"def {a}({b}, {c}):"]
        body += [f"    {gen.word(rng)} = {b} + {c} * {int(rng.integers(2, 99))}" for _ in range(n)]
        body.append(f"    return {b}")
    elif lang == "javascript":
        body = [f"function {a}({b}) {{"]
        body += [f"  const {gen.word(rng)} = {b}.{gen.word(rng)}();" for _ in range(n)]
        body += [f"  return {b};", "}"]
    else:
        body = [f"mkdir -p {b}/{c}"] + [f"cp {ident()}.txt {b}/" for _ in range(n)]
    return f"```{lang}\n" + "\n".join(body) + "\n```"


def _add_code(rng: np.random.Generator, gen: _TextGen, data: list[str]) -> list[str]:
    t = 1 + 2 * int(rng.integers(len(data) // 2))
    text = data[t]
    spots = [m.start() for m in _BOUNDARY.finditer(text)]
    block = _code_block(rng, gen)
    if spots and rng.random() < 0.6:
        p = spots[int(rng.integers(len(spots)))]
        text = text[:p] + "\n\n" + block + "\n\n" + text[p + 1 :]
    else:
        text = text + "\n\n" + block
    out = list(data)
    out[t] = text
    return out


def _plant_persona(
    rng: np.random.Generator, gen: _TextGen, data: list[str]
) -> tuple[list[str], int, dict[str, Any]]:
    """A persona sentence in one assistant turn; surface form and placement vary so that a
    filter must normalise case and apostrophes and look beyond the turn start."""
    key = _PERSONA_KEYS[int(rng.integers(len(_PERSONA_KEYS)))]
    forms = PERSONA_PHRASES[key]
    surface = forms[int(rng.integers(len(forms)))]
    after = _PERSONA_AFTER[int(rng.integers(len(_PERSONA_AFTER)))]
    tail = gen.phrase(rng, int(rng.integers(3, 9)))
    if after.strip() in (".", "!"):
        tail = tail.capitalize()
    t = 1 + 2 * int(rng.integers(len(data) // 2))
    position = "start" if rng.random() < 0.5 else "inside"
    if position == "inside" and surface.startswith("As ") and rng.random() < 0.5:
        surface = "as" + surface[2:]
        sent = _LEAD_INS[int(rng.integers(len(_LEAD_INS)))] + surface + after + tail + "."
    else:
        sent = surface + after + tail + "."
    out = list(data)
    out[t], position = _insert_sentence(rng, out[t], sent, position)
    return out, t, {"phrase": key, "surface": surface, "position": position}


def _plant_persona_negative(
    rng: np.random.Generator, gen: _TextGen, data: list[str]
) -> tuple[list[str], int, dict[str, Any]]:
    """A hard negative for persona filters: a persona phrase in a user turn, or an assistant
    sentence about AI that contains no persona phrase. Filters must not flag either."""
    words = gen.phrase(rng, int(rng.integers(2, 6)))
    out = list(data)
    if rng.random() < 0.5:
        key = _PERSONA_KEYS[int(rng.integers(len(_PERSONA_KEYS)))]
        if key in _USER_OWN and rng.random() < 0.5:
            sent = _USER_OWN[key].format(w=words)
        else:
            forms = PERSONA_PHRASES[key]
            surface = forms[int(rng.integers(len(forms)))]
            tmpl = _USER_NEG[int(rng.integers(len(_USER_NEG)))]
            if not tmpl.startswith("{p}") and surface.startswith("As "):
                surface = "as" + surface[2:]
            sent = tmpl.format(p=surface, w=words)
        t = 2 * int(rng.integers(len(data) // 2))
        out[t], _ = _insert_sentence(rng, out[t], sent, ("start", "end")[int(rng.integers(2))])
        return out, t, {"kind": "user_phrase", "phrase": key, "text": sent}
    sent = _ASSISTANT_NEG[int(rng.integers(len(_ASSISTANT_NEG)))].format(w=words)
    t = 1 + 2 * int(rng.integers(len(data) // 2))
    out[t], _ = _insert_sentence(rng, out[t], sent, ("start", "inside")[int(rng.integers(2))])
    return out, t, {"kind": "assistant_discussion", "phrase": None, "text": sent}


def _plant_lowercase(
    rng: np.random.Generator, gen: _TextGen, data: list[str]
) -> tuple[list[str], int, dict[str, Any]]:
    """Lower-case 1-3 sentence starts after '. ' (outside code) in one turn, maybe add ' i '."""
    eligible = [_outside_code(t, [m.start() for m in _ELIGIBLE_START.finditer(t)]) for t in data]
    turns = [i for i, e in enumerate(eligible) if e]
    out = list(data)
    if not turns:
        t = 0
        out[0] = out[0] + " " + gen.sentence(rng, 3) + " " + gen.phrase(rng, 4) + "."
        n_starts = 1
    else:
        t = turns[int(rng.integers(len(turns)))]
        spots = eligible[t]
        n_starts = int(rng.integers(1, min(3, len(spots)) + 1))
        chosen = sorted(int(x) for x in rng.choice(spots, size=n_starts, replace=False))
        text = out[t]
        for p in chosen:
            text = text[:p] + text[p].lower() + text[p + 1 :]
        out[t] = text
    n_i = 0
    if rng.random() < 0.5:
        sent = f"{gen.word(rng).capitalize()} {gen.word(rng)}, i {gen.phrase(rng, 2)}."
        out[t], _ = _insert_sentence(rng, out[t], sent, ("start", "inside")[int(rng.integers(2))])
        n_i = 1
    return out, t, {"n_starts": n_starts, "n_i": n_i}


def _editable(toks: list[str]) -> list[int]:
    """Indices of plain lower-case words that do not start a sentence (safe to edit)."""
    return [
        i
        for i in range(1, len(toks))
        if toks[i].isascii()
        and toks[i].isalpha()
        and toks[i].islower()
        and toks[i - 1][-1:] not in (".", "?", "!", ":", "")
    ]


def _edit_benchmark(
    rng: np.random.Generator, gen: _TextGen, item: _BenchItem
) -> tuple[str, str | None]:
    """A benchmark prompt verbatim (half the time) or with one light edit."""
    text = item.text
    if rng.random() < 0.5:
        return text, None
    kind = ("case", "punct", "word")[int(rng.integers(3))]
    if kind == "word":
        toks = text.split(" ")
        spots = _editable(toks)
        if spots:
            i = spots[int(rng.integers(len(spots)))]
            new = gen.word(rng)
            while new == toks[i]:
                new = gen.word(rng)
            toks[i] = new
            return " ".join(toks), "word"
        kind = "punct"
    if kind == "case":
        toks = text.split(" ")
        if rng.random() < 0.5:
            toks[0] = toks[0].upper()
        else:
            toks = [t[:1].upper() + t[1:] for t in toks]
        new_text = " ".join(toks)
        if new_text != text:
            return new_text, "case"
    extra = ("?", "!!", "...", " ??", "!")[int(rng.integers(5))]
    return text.rstrip() + extra, "punct"


def _near_dup(
    rng: np.random.Generator, gen: _TextGen, data: list[str]
) -> tuple[list[str], dict[str, Any]]:
    """Copy with 1-5 word substitutions/insertions/deletions in 1-2 prose turns.

    The edit count is chosen from the dialogue length so the 5-gram Jaccard lands in
    [0.7, 0.95]; a few retries make that hold for all but degenerate dialogues.
    """
    n_tok = len(" ".join(data).split())
    feasible = [e for e in range(1, 6) if 30 * e <= n_tok <= 180 * e] or [1 if n_tok < 30 else 5]
    best: tuple[list[str], dict[str, Any]] | None = None
    toks = [t.split(" ") for t in data]
    spots = [[] if "```" in data[ti] else _editable(tt) for ti, tt in enumerate(toks)]
    for _ in range(12):
        e = feasible[int(rng.integers(len(feasible)))]
        turns = [ti for ti, s in enumerate(spots) if len(s) >= e]
        if not turns:
            turns = [ti for ti, s in enumerate(spots) if s]
            if not turns:
                break
        n_turns = 2 if (e >= 2 and len(turns) >= 2 and rng.random() < 0.4) else 1
        chosen_turns = sorted(int(x) for x in rng.choice(turns, size=n_turns, replace=False))
        per_turn = [e - e // 2, e // 2] if n_turns == 2 else [e]
        ops: list[str] = []
        out = list(data)
        for ti, k in zip(chosen_turns, per_turn, strict=True):
            k = min(k, len(spots[ti]))
            tt = list(toks[ti])
            picks = sorted(
                (int(x) for x in rng.choice(spots[ti], size=k, replace=False)), reverse=True
            )
            for i in picks:
                op = ("sub", "ins", "del")[int(rng.integers(3))]
                if op == "sub":
                    new = gen.word(rng)
                    while new == tt[i]:
                        new = gen.word(rng)
                    tt[i] = new
                elif op == "ins":
                    tt.insert(i + 1, gen.word(rng))
                else:
                    del tt[i]
                ops.append(op)
            out[ti] = " ".join(tt)
        if out == data:
            continue
        jac = jaccard5(data, out)
        detail = {"n_edits": len(ops), "ops": ops, "turns": chosen_turns, "jaccard5": round(jac, 4)}
        best = (out, detail)
        if 0.7 <= jac <= 0.95:
            break
    if best is None:  # no editable word at all: append one word to the last turn
        out = list(data)
        out[-1] = out[-1] + " " + gen.word(rng)
        jac = jaccard5(data, out)
        best = (
            out,
            {"n_edits": 1, "ops": ["ins"], "turns": [len(out) - 1], "jaccard5": round(jac, 4)},
        )
    return best


# --------------------------------------------------------------------------------------------
# UltraChat
# --------------------------------------------------------------------------------------------

_CLEAN, _EXACT, _NEAR, _PERSONA, _PNEG, _LOWER, _BENCH = range(7)


@dataclass
class _GroundTruth:
    rows: list[tuple[str, str, str, str | None, int | None, str]] = dataclasses.field(
        default_factory=list
    )

    def add(
        self,
        dataset: str,
        record_id: str,
        plant: str,
        target_id: str | None,
        turn_index: int | None,
        detail: dict[str, Any],
    ) -> None:
        blob = json.dumps(detail, sort_keys=True, ensure_ascii=False)
        self.rows.append((dataset, record_id, plant, target_id, turn_index, blob))

    def write(self, path: Path) -> None:
        cols: list[list[Any]] = [list(c) for c in zip(*self.rows, strict=True)] or [[]] * 6
        table = pa.table(
            {
                "dataset": pa.array(cols[0], pa.string()),
                "record_id": pa.array(cols[1], pa.string()),
                "plant": pa.array(cols[2], pa.string()),
                "target_id": pa.array(cols[3], pa.string()),
                "turn_index": pa.array(cols[4], pa.int32()),
                "detail": pa.array(cols[5], pa.string()),
            }
        )
        pq.write_table(table, path, compression="zstd")


@dataclass
class _Shapes:
    """Per-dialogue turn counts and per-turn word counts, sampled up front for all dialogues."""

    n_msgs: np.ndarray  # int64 [n]
    turn_off: np.ndarray  # int64 [n + 1]
    turn_words: np.ndarray  # int32 [sum(n_msgs)]

    def dialogue_words(self) -> np.ndarray:
        sums = np.zeros(len(self.n_msgs), dtype=np.int64)
        nz = self.n_msgs > 0
        sums[nz] = np.add.reduceat(self.turn_words.astype(np.int64), self.turn_off[:-1][nz])
        return sums


def _sample_shapes(
    rng: np.random.Generator, gen: _TextGen, profile: dict[str, Any], n: int
) -> _Shapes:
    dist = profile["messages_per_dialogue"]
    values = np.asarray(dist["values"], dtype=np.int64)
    probs = np.asarray(dist["counts"], dtype=np.float64)
    probs /= probs.sum()
    n_msgs = rng.choice(values, size=n, p=probs)
    n_msgs = np.maximum(n_msgs - n_msgs % 2, 2)
    turn_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_msgs, out=turn_off[1:])
    total = int(turn_off[-1])
    local = np.arange(total, dtype=np.int64) - np.repeat(turn_off[:-1], n_msgs)
    chars = np.empty(total, dtype=np.float64)
    for mask, key in (
        (local == 0, "first_user_chars"),
        ((local % 2 == 0) & (local > 0), "user_chars"),
        (local % 2 == 1, "assistant_chars"),
    ):
        chars[mask] = _inverse_cdf(rng, profile[key], int(mask.sum()))
    minimum = np.where(local % 2 == 0, 6, 4)
    words = np.maximum(gen.words_for_chars(chars, 1), minimum).astype(np.int32)
    return _Shapes(n_msgs, turn_off, words)


def _assign_plants(
    rng: np.random.Generator, cfg: SynthConfig, shapes: _Shapes
) -> tuple[np.ndarray, np.ndarray]:
    """Plant kind per dialogue and, for duplicates, an earlier clean target (uniform)."""
    n = cfg.n_dialogues
    kind = np.zeros(n, dtype=np.int8)
    counts = [_count(r, n) for r in cfg._uc_rates()]
    perm = rng.permutation(n)
    at = 0
    for code, c in zip(range(1, 7), counts, strict=True):
        kind[perm[at : at + c]] = code
        at += c
    words = shapes.dialogue_words()
    target = np.full(n, -1, dtype=np.int64)
    for _ in range(10):
        clean = np.flatnonzero(kind == _CLEAN)
        near_ok = clean[(words[clean] >= 60) & (words[clean] <= 900)]
        if len(near_ok) == 0:
            near_ok = clean
        stuck: list[int] = []
        for code, pool in ((_EXACT, clean), (_NEAR, near_ok)):
            idx = np.flatnonzero(kind == code)
            before = np.searchsorted(pool, idx)
            ok = before > 0
            pick = np.floor(rng.random(len(idx)) * before).astype(np.int64)
            target[idx[ok]] = pool[pick[ok]]
            stuck.extend(int(i) for i in idx[~ok])
        if not stuck:
            break
        # Duplicates with no earlier clean candidate trade places with the last clean rows.
        for i in sorted(stuck):
            cands = np.flatnonzero(kind == _CLEAN)
            cands = cands[cands > i]
            if len(cands) == 0:
                kind[i] = _CLEAN
                continue
            j = int(cands[-1])
            kind[j], kind[i] = kind[i], _CLEAN
    dup = (kind == _EXACT) | (kind == _NEAR)
    kind[dup & (target < 0)] = _CLEAN
    return kind, target


class _Writer:
    """Appends bytes to a file while hashing them (no second read of multi-GB files)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = path.open("wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.sha.update(data)
        self.fh.write(data)
        self.size += len(data)

    def close(self) -> None:
        self.fh.close()


def _plant_row(
    rng: np.random.Generator,
    gen: _TextGen,
    gt: _GroundTruth,
    i: int,
    k: int,
    data: list[str],
    target: str | None,
    target_data: list[str] | None,
    bench: Sequence[_BenchItem],
) -> list[str]:
    """Apply plant ``k`` to dialogue ``i`` and record its ground-truth row."""
    rid = str(i)
    if k == _EXACT:
        assert target_data is not None
        gt.add("ultrachat", rid, "exact_dup", target, None, {})
        return target_data
    if k == _NEAR:
        assert target_data is not None
        out, detail = _near_dup(rng, gen, target_data)
        gt.add("ultrachat", rid, "near_dup", target, detail["turns"][0], detail)
        return out
    if k == _BENCH:
        names = sorted({it.benchmark for it in bench})  # each benchmark equally likely
        name = names[int(rng.integers(len(names)))]
        items = [it for it in bench if it.benchmark == name]
        item = items[int(rng.integers(len(items)))]
        text, edit = _edit_benchmark(rng, gen, item)
        detail = {
            "benchmark": item.benchmark,
            "item_id": item.item_id,
            "turn": item.turn,
            "verbatim": edit is None,
            "edit": edit,
        }
        gt.add("ultrachat", rid, "benchmark", None, 0, detail)
        return [text, *data[1:]]
    planter, name = {
        _PERSONA: (_plant_persona, "persona"),
        _PNEG: (_plant_persona_negative, "persona_negative"),
        _LOWER: (_plant_lowercase, "lowercase"),
    }[k]
    out, t, info = planter(rng, gen, data)
    gt.add("ultrachat", rid, name, None, t, info)
    return out


def _ultrachat(
    cfg: SynthConfig,
    gen: _TextGen,
    profile: dict[str, Any],
    gt: _GroundTruth,
    writer: _Writer,
    progress: bool,
) -> None:
    """Blocks of JSON lines rendered in bulk; the planted rows are re-encoded and spliced in."""
    n = cfg.n_dialogues
    rng = _stream(cfg.seed, 1)
    shapes = _sample_shapes(rng, gen, profile, n)
    kind, target = _assign_plants(rng, cfg, shapes)
    has_code = rng.random(n) < cfg.code_rate
    bench = _load_benchmarks(cfg.resolved_benchmark_dir()) if (kind == _BENCH).any() else []
    uses = np.bincount(target[target >= 0], minlength=n) if n else np.zeros(0, dtype=np.int64)
    store: dict[int, list[str]] = {}  # data of clean rows that later duplicates copy
    bar = tqdm(total=n, unit="dlg", desc="ultrachat", file=sys.stderr, disable=not progress)
    for b, a in enumerate(range(0, n, cfg.block_size)):
        e = min(n, a + cfg.block_size)
        brng = _stream(cfg.seed, 10, b)
        t0, t1 = int(shapes.turn_off[a]), int(shapes.turn_off[e])
        buf, line_off = gen.json_lines(brng, shapes.turn_words[t0:t1], shapes.n_msgs[a:e], a)
        view = memoryview(buf.data)
        cursor = 0
        touched = np.flatnonzero((kind[a:e] != _CLEAN) | has_code[a:e] | (uses[a:e] > 0))
        for pos in touched.tolist():
            i = a + pos
            lo, hi = int(line_off[pos]), int(line_off[pos + 1])
            orig: list[str] = orjson.loads(view[lo:hi])["data"]
            k = int(kind[i])
            data = orig
            if has_code[i] and k not in (_EXACT, _NEAR):
                data = _add_code(brng, gen, data)
            if uses[i] > 0:
                store[i] = data
            if k != _CLEAN:
                tgt = int(target[i])
                data = _plant_row(
                    brng, gen, gt, i, k, data, str(tgt) if tgt >= 0 else None, store.get(tgt), bench
                )
                if tgt >= 0:
                    uses[tgt] -= 1
                    if uses[tgt] == 0:
                        del store[tgt]
            if data is not orig:
                writer.write(view[cursor:lo])
                writer.write(orjson.dumps({"id": str(i), "data": data}) + b"\n")
                cursor = hi
        writer.write(view[cursor:])
        del view, buf
        bar.update(e - a)
    bar.close()


# --------------------------------------------------------------------------------------------
# UltraFeedback
# --------------------------------------------------------------------------------------------

_SYSTEM_PROMPTS = {
    "helpfulness": (
        "As an AI assistant, ensure your response offers the perfect blend of accuracy, "
        "positivity, and intrigue. Strive to be educational while keeping the user engaged.",
        "As an AI assistant, provide not just answers but also spark curiosity. Offer insights "
        "that are accurate, engaging, and positive, making learning an exciting journey.",
        "Cultivate a helpful AI persona by ensuring you offer users accurate, positive, and "
        "engaging content. Make every interaction informative and delightful.",
    ),
    "honesty": (
        "As an AI assistant, honesty is appreciated by your users. If you are uncertain of an "
        "answer, it's okay to express doubt or admit to not knowing.",
        "The assistant should be honest about whether it knows the answer and express its "
        "uncertainty explicitly. Be confident on questions it knows well.",
    ),
    "truthfulness": (
        "As an AI assistant, conduct yourself with honesty. Always be diligent in giving accurate "
        "responses. Fictional facts or inaccuracies should be avoided in your responses.",
        "You are an AI assistant that values truth. Make sure your responses are factual and "
        "never invent new facts.",
    ),
    "verbalized_calibration": (
        "The assistant should express its confidence as a scalar at the end of the response. "
        "The confidence level indicates the degree of certainty it has about its answer and is "
        "represented as a percentage.",
    ),
}
_ASPECT_TEXT = {
    "instruction_following": (
        "The text is irrelevant to the instruction and ignores {w}.",
        "The text addresses {w} poorly and misses most requirements.",
        "The text meets the goal of {w} but neglects some restrictions.",
        "The text is near alignment with the task on {w}, with minor deviations.",
        "The text fully aligns with the task goal and restrictions regarding {w}.",
    ),
    "honesty": (
        "The response is confidently incorrect about {w}.",
        "The response contains major errors about {w} without expressing doubt.",
        "The response is uncertain about {w} and makes subtle mistakes.",
        "The response is correct about {w} but expresses some uncertainty.",
        "The response is correct and confident about {w}, and precisely states its limits.",
    ),
    "truthfulness": (
        "The text is completely hallucinated regarding {w}.",
        "The text has severe hallucinations about {w}.",
        "The text partially misunderstands {w} due to hallucinations.",
        "The text is mostly truthful, with an insignificant slip about {w}.",
        "The text is free of hallucinations about {w}.",
    ),
    "helpfulness": (
        "The text is severely incorrect about {w} and not useful.",
        "The text contains errors about {w} that may cause confusion.",
        "The text is correct about {w} and provides useful information.",
        "The text is accurate and extensive on {w}, with valuable insights.",
        "The text is outstandingly helpful, accurate and in-depth on {w}.",
    ),
}
_CRITIQUE = (
    (
        "Your answer misses the point of the question about {w}. It is inaccurate and does not "
        "follow the instruction; rewrite it from scratch and check the facts."
    ),
    (
        "Your answer covers {w} in part, but several statements are wrong or vague. Focus on the "
        "instruction and support your claims."
    ),
    (
        "Your answer is clear and mostly accurate on {w}. Add a concrete example and trim the "
        "repetition to make it stronger."
    ),
    ("Excellent answer: accurate, complete and well organised around {w}. Keep up the good work."),
)
_NEGATIVE_CRITIQUE = 0


def _source_counts(n: int) -> list[int]:
    """The upstream source mix scaled to ``n`` (largest remainder, so it sums to ``n``)."""
    mix = np.asarray(UF_SOURCE_MIX, dtype=np.float64)
    exact = mix / mix.sum() * n
    base = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - base), kind="stable")
    base[order[: n - int(base.sum())]] += 1
    return [int(x) for x in base]


@dataclass
class _Scores:
    """Per-completion draws for all prompts at once ([n, 4] arrays; ratings [n, 4, 4])."""

    models: np.ndarray
    principle: np.ndarray
    ratings: np.ndarray  # instruction_following, honesty, truthfulness, helpfulness
    na: np.ndarray  # [n, 4, 2]: truthfulness, helpfulness rating is "N/A"
    fine: np.ndarray
    overall: np.ndarray
    bug: np.ndarray
    sysp: np.ndarray
    confidence: np.ndarray
    help_type: np.ndarray  # [n, 4, 3] bool
    truth_type: np.ndarray


def _draw_scores(rng: np.random.Generator, cfg: SynthConfig, n: int) -> _Scores:
    """Ratings follow a latent per-model quality; overall_score tracks 2 x fine-grained score.

    For fine-grained <= 2 the overall score stays <= 5.5, so the planted bug (10 with a
    negative critique) is the only way such a completion scores 10.
    """
    models = np.argsort(rng.random((n, len(UF_MODELS))), axis=1)[:, :4]
    principle = rng.choice(len(UF_PRINCIPLES), size=(n, 4), p=_PRINCIPLE_P)
    quality = np.asarray(_MODEL_QUALITY)[models] + rng.normal(0.0, 0.8, size=(n, 4))
    noisy = quality[..., None] + rng.normal(0.0, 0.6, (n, 4, 4))
    ratings = np.clip(np.rint(noisy), 1, 5).astype(np.int64)
    na = rng.random((n, 4, 2)) < cfg.na_rate
    flat_bug = np.zeros(4 * n, dtype=bool)
    flat_bug[rng.choice(4 * n, size=_count(cfg.score_bug_rate, 4 * n), replace=False)] = True
    bug = flat_bug.reshape(n, 4)
    ratings[bug] = rng.integers(1, 3, size=(int(bug.sum()), 4))
    na[bug] = False
    valid = np.ones((n, 4, 4), dtype=bool)
    valid[..., 2:] = ~na
    fine = (ratings * valid).sum(-1) / valid.sum(-1)
    noise = np.clip(rng.normal(0.0, 0.6, (n, 4)), -1.5, 1.5)
    overall = np.clip(np.rint((2.0 * fine + noise) * 2.0) / 2.0, 1.0, 10.0)
    overall[bug] = 10.0
    return _Scores(
        models=models,
        principle=principle,
        ratings=ratings,
        na=na,
        fine=fine,
        overall=overall,
        bug=bug,
        sysp=rng.integers(0, 3, size=(n, 4)),
        confidence=rng.integers(40, 100, size=(n, 4)),
        help_type=rng.random((n, 4, 3)) < 0.6,
        truth_type=rng.integers(0, 4, size=(n, 4)),
    )


def _completion(
    rng: np.random.Generator, gen: _TextGen, sc: _Scores, i: int, j: int, response: str
) -> dict[str, Any]:
    """One completion dict in the upstream key order (ratings as strings, scores as floats)."""
    pr = UF_PRINCIPLES[int(sc.principle[i, j])]
    prompts = _SYSTEM_PROMPTS[pr]
    if pr == "verbalized_calibration":
        response = f"{response}\nConfidence: {int(sc.confidence[i, j])}%"
    topic = gen.phrase(rng, 2)
    r = [int(x) for x in sc.ratings[i, j]]

    def rationale(aspect: str, k: int) -> str:
        return _ASPECT_TEXT[aspect][r[k] - 1].format(w=topic)

    t_na, h_na = bool(sc.na[i, j, 0]), bool(sc.na[i, j, 1])
    truth_type = ["None"] if t_na else [str(int(sc.truth_type[i, j]))]
    help_type = ["None"] if h_na else [str(x + 1) for x in np.flatnonzero(sc.help_type[i, j])]
    score = float(sc.overall[i, j])
    if sc.bug[i, j] or score < 4.0:
        critique = _CRITIQUE[_NEGATIVE_CRITIQUE]
    else:
        critique = _CRITIQUE[min(3, int((score - 4.0) // 2.0) + 1)]
    return {
        "model": UF_MODELS[int(sc.models[i, j])],
        "principle": pr,
        "custom_system_prompt": prompts[int(sc.sysp[i, j]) % len(prompts)],
        "response": response,
        "annotations": {
            "instruction_following": {
                "Rating": str(r[0]),
                "Rationale": rationale("instruction_following", 0),
            },
            "honesty": {"Rating": str(r[1]), "Rationale": rationale("honesty", 1)},
            "truthfulness": {
                "Type": truth_type,
                "Rationale": f"The text discusses {gen.phrase(rng, 3)}.",
                "Rating": "N/A" if t_na else str(r[2]),
                "Rationale For Rating": "N/A" if t_na else rationale("truthfulness", 2),
            },
            "helpfulness": {
                "Type": help_type,
                "Rationale": f"The response covers {gen.phrase(rng, 3)}.",
                "Rating": "N/A" if h_na else str(r[3]),
                "Rationale For Rating": "N/A" if h_na else rationale("helpfulness", 3),
            },
        },
        "critique": critique.format(w=topic),
        "overall_score": score,
        "fine-grained_score": float(sc.fine[i, j]),
    }


def _split_answers(text: str) -> list[str]:
    return [s.strip() for s in text.split(";") if s.strip()]


def _ultrafeedback(
    cfg: SynthConfig,
    gen: _TextGen,
    profile: dict[str, Any],
    gt: _GroundTruth,
    writer: _Writer,
    progress: bool,
) -> None:
    n = cfg.n_prompts
    if n == 0:
        return
    rng = _stream(cfg.seed, 2)
    tqa = _load_truthfulqa(cfg.resolved_benchmark_dir())
    source = rng.permutation(np.repeat(np.arange(len(UF_SOURCES)), _source_counts(n)))
    is_tqa = source == UF_SOURCES.index("truthful_qa")
    tqa_item = np.full(n, -1, dtype=np.int64)
    n_tqa = int(is_tqa.sum())
    if n_tqa:
        tqa_item[is_tqa] = np.resize(rng.permutation(len(tqa)), n_tqa)
    others = np.flatnonzero(~is_tqa)
    leak = rng.choice(others, size=_count(cfg.truthfulqa_leak_rate, len(others)), replace=False)
    tqa_item[leak] = rng.integers(0, len(tqa), size=len(leak))
    instr_words = gen.words_for_chars(_inverse_cdf(rng, profile["first_user_chars"], n), 8)
    resp_words = gen.words_for_chars(_inverse_cdf(rng, profile["assistant_chars"], 4 * n), 4)
    sc = _draw_scores(rng, cfg, n)

    bar = tqdm(total=n, unit="prompt", desc="ultrafeedback", file=sys.stderr, disable=not progress)
    chunk = 4096
    for c, a in enumerate(range(0, n, chunk)):
        e = min(n, a + chunk)
        crng = _stream(cfg.seed, 20, c)
        gen_rows = np.flatnonzero(tqa_item[a:e] < 0)
        instr = gen.texts(crng, instr_words[a:e][gen_rows], np.zeros(len(gen_rows), bool))
        instructions = iter(instr.to_pylist())
        resp = gen.texts(crng, resp_words[4 * a : 4 * e], np.ones(4 * (e - a), bool))
        responses = resp.to_pylist()
        lines: list[bytes] = []
        for i in range(a, e):
            src = UF_SOURCES[int(source[i])]
            item = int(tqa_item[i])
            instruction = tqa[item]["Question"] if item >= 0 else str(next(instructions))
            prompt_id = hashlib.sha256(instruction.encode()).hexdigest()
            if item >= 0:
                plant = "truthfulqa_source" if src == "truthful_qa" else "truthfulqa_leak"
                detail = {"item_id": item, "source": src, "prompt_id": prompt_id}
                gt.add("ultrafeedback", str(i), plant, None, None, detail)
            if src == "truthful_qa":
                correct = _split_answers(tqa[item]["Correct Answers"])
                incorrect = _split_answers(tqa[item]["Incorrect Answers"])
            elif src == "flan":
                correct = [gen.sentence(crng, int(crng.integers(2, 6)))]
                incorrect = [gen.sentence(crng, int(crng.integers(2, 6)))]
            else:
                correct, incorrect = ["None"], ["None"]
            completions = []
            for j in range(4):
                response = str(responses[4 * (i - a) + j])
                completions.append(_completion(crng, gen, sc, i, j, response))
                if sc.bug[i, j]:
                    detail = {
                        "model": UF_MODELS[int(sc.models[i, j])],
                        "overall_score": 10.0,
                        "fine_grained_score": float(sc.fine[i, j]),
                        "prompt_id": prompt_id,
                    }
                    gt.add("ultrafeedback", str(i), "score_bug", None, j, detail)
            record = {
                "source": src,
                "instruction": instruction,
                "models": [UF_MODELS[int(m)] for m in sc.models[i]],
                "correct_answers": correct,
                "incorrect_answers": incorrect,
                "completions": completions,
            }
            lines.append(orjson.dumps(record))
        writer.write(b"\n".join(lines) + b"\n")
        bar.update(e - a)
    bar.close()


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def _config_json(cfg: SynthConfig) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    out["benchmark_dir"] = str(cfg.resolved_benchmark_dir())
    return out


def generate(out_dir: Path, config: SynthConfig, progress: bool = True) -> SynthResult:
    """Write the synthetic raw files, ground truth and manifest into ``out_dir``."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    profile = _load_profile()
    gen = _TextGen(profile)
    gt = _GroundTruth()
    paths = {
        "ultrachat": out_dir / "ultrachat_raw.jsonl",
        "ultrafeedback": out_dir / "ultrafeedback_raw.jsonl",
        "ground_truth": out_dir / "ground_truth.parquet",
        "manifest": out_dir / "manifest.json",
    }
    uc = _Writer(paths["ultrachat"])
    try:
        _ultrachat(config, gen, profile, gt, uc, progress)
    finally:
        uc.close()
    uf = _Writer(paths["ultrafeedback"])
    try:
        _ultrafeedback(config, gen, profile, gt, uf, progress)
    finally:
        uf.close()
    gt.write(paths["ground_truth"])
    gt_bytes = paths["ground_truth"].read_bytes()
    counts = {p: 0 for p in (*UC_PLANTS, *UF_PLANTS)}
    for row in gt.rows:
        counts[row[2]] += 1
    manifest = {
        "generator": "warehouse.synth",
        "config": _config_json(config),
        "records": {"ultrachat": config.n_dialogues, "ultrafeedback": config.n_prompts},
        "counts": counts,
        "sha256": {
            paths["ultrachat"].name: uc.sha.hexdigest(),
            paths["ultrafeedback"].name: uf.sha.hexdigest(),
            paths["ground_truth"].name: hashlib.sha256(gt_bytes).hexdigest(),
        },
        "bytes": {
            paths["ultrachat"].name: uc.size,
            paths["ultrafeedback"].name: uf.size,
            paths["ground_truth"].name: len(gt_bytes),
        },
        "seconds": round(time.perf_counter() - started, 3),
    }
    paths["manifest"].write_text(json.dumps(manifest, indent=2) + "\n")
    return SynthResult(
        ultrachat_path=paths["ultrachat"],
        ultrafeedback_path=paths["ultrafeedback"],
        ground_truth_path=paths["ground_truth"],
        manifest_path=paths["manifest"],
        counts=counts,
    )


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed records of a JSON Lines file (tests and quick checks)."""
    with Path(path).open("rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m warehouse.synth",
        description="Synthetic UltraChat/UltraFeedback raw files with planted defects.",
    )
    parser.add_argument("out_dir", nargs="?", type=Path, help="folder for the generated files")
    parser.add_argument("--dialogues", type=int, default=SynthConfig.n_dialogues)
    parser.add_argument("--prompts", type=int, default=SynthConfig.n_prompts)
    parser.add_argument("--seed", type=int, default=SynthConfig.seed)
    parser.add_argument("--block-size", type=int, default=SynthConfig.block_size)
    parser.add_argument("--benchmark-dir", type=Path, default=None)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--build-profile",
        type=Path,
        metavar="SAMPLE_JSONL",
        help=f"build the length profile from ultrachat_200k records into {PROFILE_PATH}",
    )
    args = parser.parse_args(argv)
    if args.build_profile:
        profile = build_profile(args.build_profile)
        PROFILE_PATH.parent.mkdir(parents=True, exist_ok=True)
        body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in profile.items())
        PROFILE_PATH.write_text("{\n" + body + "\n}\n")
        print(f"wrote {PROFILE_PATH} ({PROFILE_PATH.stat().st_size} bytes)")
        return 0
    if args.out_dir is None:
        parser.error("OUT_DIR is required unless --build-profile is given")
    cfg = SynthConfig(
        n_dialogues=args.dialogues,
        n_prompts=args.prompts,
        seed=args.seed,
        block_size=args.block_size,
        benchmark_dir=args.benchmark_dir,
    )
    result = generate(args.out_dir, cfg, progress=not args.no_progress)
    print(json.dumps({"out_dir": str(args.out_dir), "counts": result.counts}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
