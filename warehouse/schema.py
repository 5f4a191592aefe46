"""The warehouse schema, declared once as data.

The DDL, `curate schema` and docs/schema.md are all rendered from `TABLES` and `VIEWS`, so
the documentation cannot drift from what the database holds.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = "1"

MESSAGE = "STRUCT(role VARCHAR, content VARCHAR)"
MESSAGES = f"{MESSAGE}[]"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]

    def ddl(self) -> str:
        cols = ",\n  ".join(f'"{c.name}" {c.type}' for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {cols}\n)"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class View:
    name: str
    doc: str
    sql: str

    def ddl(self) -> str:
        return f"CREATE OR REPLACE VIEW {self.name} AS\n{self.sql}"


C = Column

LINEAGE = (
    C("batch_id", "VARCHAR", "ingest batch this row came from (ingest_batches.batch_id)"),
    C("source_file", "VARCHAR", "file (or hub id and split) the row was read from"),
    C("source_line", "BIGINT", "1-based line in a JSON Lines file; row number otherwise"),
)

INGEST_BATCHES = Table(
    "ingest_batches",
    "One row per committed ingest of one file (or one split of a datasets folder / hub id).",
    (
        C("batch_id", "VARCHAR", "b_ + hash of (checksum, format, split)"),
        C("source", "VARCHAR", "the path or hub id as the user gave it"),
        C("source_file", "VARCHAR", "absolute path of the file, or hub id"),
        C("source_kind", "VARCHAR", "jsonl | json | parquet | arrow | hub"),
        C("format", "VARCHAR", "record format (see `curate ingest --help`)"),
        C("split", "VARCHAR", "split name where the source had splits"),
        C("checksum", "VARCHAR", "sha256 of the file bytes (hub: of id, revision, split)"),
        C("size_bytes", "BIGINT", "file size"),
        C("dataset_revision", "VARCHAR", "hub revision or datasets fingerprint, where known"),
        C("target_table", "VARCHAR", "table the accepted rows went to"),
        C("n_in", "BIGINT", "records read (blank lines excluded)"),
        C("n_accepted", "BIGINT", "records stored in the target table"),
        C(
            "n_quarantined",
            "BIGINT",
            "records stored in quarantine; n_in = n_accepted + n_quarantined",
        ),
        C("n_blank", "BIGINT", "blank lines skipped (not records)"),
        C("started_at", "TIMESTAMP", "UTC start"),
        C("finished_at", "TIMESTAMP", "UTC commit time"),
        C("seconds", "DOUBLE", "wall time"),
        C("curate_version", "VARCHAR", "version of this tool that ingested it"),
    ),
)

QUARANTINE = Table(
    "quarantine",
    "Rejected input, never lost: one row per bad record with where it was and why.",
    (
        C("batch_id", "VARCHAR", "ingest batch"),
        C("source_file", "VARCHAR", "file the record was read from"),
        C("source_line", "BIGINT", "1-based line (row number for columnar files)"),
        C("format", "VARCHAR", "format the file was read as"),
        C("reason", "VARCHAR", "why it was rejected, naming the field"),
        C("raw_text", "VARCHAR", "the record as text (invalid UTF-8 shown with backslash escapes)"),
        C("raw_bytes", "BLOB", "the exact bytes, kept only when they are not valid UTF-8"),
    ),
)

DIALOGUES = Table(
    "dialogues",
    "UltraChat dialogues (raw and ultrachat_200k), one row per dialogue.",
    (
        C("dialogue_id", "VARCHAR", "stable row id: hash of (file checksum, split, line)"),
        C("source_format", "VARCHAR", "ultrachat_raw | ultrachat_200k"),
        C("source_id", "VARCHAR", "the record's own id (raw UltraChat `id`)"),
        C("split", "VARCHAR", "published split (train_sft, test_gen, ...) where known"),
        C("prompt", "VARCHAR", "first user turn as published (ultrachat_200k `prompt`)"),
        C("prompt_id", "VARCHAR", "sha256(prompt.encode('utf-8')).hexdigest(), as H4 computes it"),
        C("messages", MESSAGES, "the dialogue: list of {role, content}"),
        C(
            "first_user_turn",
            "VARCHAR",
            "content of the first user message, stored so slices on it skip the messages column",
        ),
        C("n_turns", "INTEGER", "number of messages"),
        C("n_user_turns", "INTEGER", "messages with role user"),
        C("n_assistant_turns", "INTEGER", "messages with role assistant"),
        C("last_role", "VARCHAR", "role of the last message (gen splits end with user)"),
        C("n_chars", "BIGINT", "characters over all messages"),
        C("prompt_chars", "INTEGER", "characters of the prompt"),
        C("max_turn_chars", "INTEGER", "characters of the longest message"),
        *LINEAGE,
    ),
)

UF_PROMPTS = Table(
    "uf_prompts",
    "Raw UltraFeedback prompts (openbmb), one row per instruction.",
    (
        C("prompt_uid", "VARCHAR", "stable row id: hash of (file checksum, line)"),
        C(
            "source",
            "VARCHAR",
            "evol_instruct | false_qa | flan | sharegpt | truthful_qa | ultrachat",
        ),
        C("prompt", "VARCHAR", "the instruction"),
        C("prompt_id", "VARCHAR", "sha256 of the instruction, as H4 computes it"),
        C("models", "VARCHAR[]", "the 4 models asked"),
        C("correct_answers", "VARCHAR[]", "reference answers (TruthfulQA, FLAN)"),
        C("incorrect_answers", "VARCHAR[]", "reference wrong answers (TruthfulQA, FLAN)"),
        C("n_completions", "INTEGER", "completions stored in uf_completions"),
        C("prompt_chars", "INTEGER", "characters of the instruction"),
        *LINEAGE,
    ),
)

UF_COMPLETIONS = Table(
    "uf_completions",
    "Raw UltraFeedback completions with every aspect's rating and rationale.",
    (
        C("completion_id", "VARCHAR", "prompt_uid:index"),
        C("prompt_uid", "VARCHAR", "uf_prompts.prompt_uid"),
        C("prompt_id", "VARCHAR", "sha256 of the instruction"),
        C("completion_index", "INTEGER", "0-based position in the record's completions"),
        C("model", "VARCHAR", "model that wrote the response"),
        C("principle", "VARCHAR", "helpfulness | honesty | truthfulness | verbalized_calibration"),
        C("custom_system_prompt", "VARCHAR", "system prompt the model was given"),
        C("response", "VARCHAR", "the completion text"),
        C("response_chars", "INTEGER", "characters of the response"),
        C("instruction_following_rating", "DOUBLE", "1-5; NULL for N/A"),
        C("instruction_following_rationale", "VARCHAR", "GPT-4 rationale"),
        C("honesty_rating", "DOUBLE", "1-5; NULL for N/A"),
        C("honesty_rationale", "VARCHAR", "GPT-4 rationale"),
        C("truthfulness_type", "VARCHAR[]", "hallucination types"),
        C("truthfulness_rating", "DOUBLE", "1-5; NULL for N/A"),
        C("truthfulness_rationale", "VARCHAR", "GPT-4 rationale"),
        C("truthfulness_rating_rationale", "VARCHAR", "'Rationale For Rating'"),
        C("helpfulness_type", "VARCHAR[]", "informativeness types"),
        C("helpfulness_rating", "DOUBLE", "1-5; NULL for N/A"),
        C("helpfulness_rationale", "VARCHAR", "GPT-4 rationale"),
        C("helpfulness_rating_rationale", "VARCHAR", "'Rationale For Rating'"),
        C("n_na_ratings", "INTEGER", "aspect ratings given as N/A"),
        C("critique", "VARCHAR", "GPT-4 textual feedback"),
        C("overall_score", "DOUBLE", "1-10 from the critique pass (H4 binarizes on this)"),
        C("fine_grained_score", "DOUBLE", "as published: mean of the non-N/A aspect ratings"),
        C("mean_aspect_rating", "DOUBLE", "recomputed mean of non-N/A aspect ratings (Argilla)"),
        *LINEAGE,
    ),
)

PREFERENCE_PAIRS = Table(
    "preference_pairs",
    "Preference pairs that arrived already binarized (H4, TRL flat, Argilla cleaned).",
    (
        C("pair_id", "VARCHAR", "stable row id: hash of (file checksum, split, line)"),
        C("source_format", "VARCHAR", "h4_binarized | trl_flat | argilla_cleaned"),
        C("source", "VARCHAR", "UltraFeedback source subset, where given (Argilla)"),
        C("split", "VARCHAR", "published split where known"),
        C("prompt", "VARCHAR", "the prompt text"),
        C("prompt_id", "VARCHAR", "sha256 of the prompt"),
        C("chosen", MESSAGES, "prompt turn(s) + chosen answer"),
        C("rejected", MESSAGES, "prompt turn(s) + rejected answer"),
        C("messages", MESSAGES, "SFT view (= chosen in H4)"),
        C("score_chosen", "DOUBLE", "score of the chosen answer (scale depends on source_format)"),
        C("score_rejected", "DOUBLE", "score of the rejected answer"),
        C("chosen_model", "VARCHAR", "model of the chosen answer, where given"),
        C("rejected_model", "VARCHAR", "model of the rejected answer, where given"),
        C("source_index", "BIGINT", "TRL flat `source_index`"),
        C("is_tie", "BOOLEAN", "score_chosen = score_rejected"),
        C("chosen_chars", "INTEGER", "characters of the chosen answer"),
        C("rejected_chars", "INTEGER", "characters of the rejected answer"),
        *LINEAGE,
    ),
)

EMBEDDING_CACHE = Table(
    "embedding_cache",
    "Embedding vectors keyed by (model, text hash), so re-runs embed nothing they have seen.",
    (
        C(
            "model_id",
            "VARCHAR",
            "embedder id, including its token limit (e.g. all-MiniLM-L6-v2@256)",
        ),
        C("text_hash", "VARCHAR", "sha256 of the embedded text"),
        C("dim", "INTEGER", "vector length"),
        C("vector", "FLOAT[]", "the normalised embedding"),
    ),
)

META = Table(
    "warehouse_meta",
    "Key/value facts about this warehouse file (schema version, creation time).",
    (C("key", "VARCHAR PRIMARY KEY", "name"), C("value", "VARCHAR", "value")),
)

TABLES: tuple[Table, ...] = (
    DIALOGUES,
    UF_PROMPTS,
    UF_COMPLETIONS,
    PREFERENCE_PAIRS,
    QUARANTINE,
    INGEST_BATCHES,
    EMBEDDING_CACHE,
    META,
)

VIEWS: tuple[View, ...] = (
    View(
        "turns",
        "One row per message: dialogue_id, turn_index (0-based), role, content, n_chars.",
        # Two unnests in one SELECT run in lockstep; this is about 4x faster than a LATERAL
        # join over generate_series (bench/results/queries.md).
        """SELECT dialogue_id, source_format, split, turn_index, m.role AS role,
       m.content AS content, length(m.content) AS n_chars, n_turns
FROM (
  SELECT dialogue_id, source_format, split, n_turns,
         generate_subscripts(messages, 1) - 1 AS turn_index, unnest(messages) AS m
  FROM dialogues
)""",
    ),
    View(
        "assistant_turns",
        "Assistant messages only (where persona and refusal phrases live).",
        "SELECT * FROM turns WHERE role = 'assistant'",
    ),
    View(
        "user_turns",
        "User messages only.",
        "SELECT * FROM turns WHERE role = 'user'",
    ),
    View(
        "first_user_turns",
        "The first user message of each dialogue (what decontamination compares).",
        """SELECT dialogue_id, source_format, split, prompt_id, n_turns, first_user_turn AS content
FROM dialogues""",
    ),
    View(
        "multi_turn_dialogues",
        "Dialogues with more than one user turn.",
        "SELECT * FROM dialogues WHERE n_user_turns > 1",
    ),
    View(
        "completions_rated",
        "UltraFeedback completions joined to their prompt, with every rating.",
        """SELECT p.source, p.prompt, c.*
FROM uf_completions c JOIN uf_prompts p USING (prompt_uid)""",
    ),
)


def all_ddl() -> list[str]:
    """Statements that create every table and view (idempotent)."""
    return [t.ddl() for t in TABLES] + [v.ddl() for v in VIEWS]


def table(name: str) -> Table:
    for t in TABLES:
        if t.name == name:
            return t
    raise KeyError(name)


def render_markdown() -> str:
    """docs/schema.md, generated from the declarations above."""
    out = [
        "# Warehouse schema",
        "",
        "Generated from `warehouse/schema.py` (`curate schema --markdown`); a test keeps it in sync.",
        "",
        "Messages are `LIST<STRUCT(role VARCHAR, content VARCHAR)>`; roles are `system`, `user`,",
        "`assistant`. Every data row points to its ingest batch, file and line.",
        "",
        "## Tables",
        "",
    ]
    for t in TABLES:
        out += [f"### `{t.name}`", "", t.doc, "", "| column | type | meaning |", "|---|---|---|"]
        out += [f"| `{c.name}` | `{c.type}` | {c.doc} |" for c in t.columns]
        out.append("")
    out += ["## Views", ""]
    for v in VIEWS:
        out += [f"### `{v.name}`", "", v.doc, "", "```sql", v.sql, "```", ""]
    return "\n".join(out)
