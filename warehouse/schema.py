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

SNAPSHOTS = Table(
    "snapshots",
    "The snapshot catalog: one immutable, content-addressed row per committed snapshot.",
    (
        C(
            "snapshot_id",
            "VARCHAR",
            "s_ + hash of (inputs, recipe text, code version, models, seed)",
        ),
        C("kind", "VARCHAR", "sft | preferences"),
        C("recipe_name", "VARCHAR", "the recipe's name"),
        C("recipe_text", "VARCHAR", "the recipe as canonical JSON (what the id hashes)"),
        C(
            "inputs",
            "VARCHAR",
            "JSON list of inputs: tables with their ingest batches, or snapshots",
        ),
        C("parent_snapshots", "VARCHAR[]", "snapshots this one was built from"),
        C("ingest_batches", "VARCHAR[]", "ingest batches this one was built from"),
        C("code_version", "VARCHAR", "hash of the filters/ and curation/ source"),
        C("model_versions", "VARCHAR", "JSON: embedding models (id, revision) the steps used"),
        C("seed", "BIGINT", "the recipe seed"),
        C("content_hash", "VARCHAR", "sha256 over the stored rows in (split, ordinal) order"),
        C("n_rows", "BIGINT", "rows over all splits"),
        C("splits", "VARCHAR", "JSON: rows per split"),
        C("message", "VARCHAR", "free text given at commit"),
        C("created_at", "TIMESTAMP", "UTC commit time"),
        C("wall_s", "DOUBLE", "seconds the run took"),
    ),
)

SNAPSHOT_STEPS = Table(
    "snapshot_steps",
    "Per-step lineage of a snapshot: rows in and out, time, memory, and the cache entry used.",
    (
        C("snapshot_id", "VARCHAR", "snapshots.snapshot_id"),
        C("step_index", "INTEGER", "0-based position in the recipe"),
        C("step_name", "VARCHAR", "the step's name (unique within the recipe)"),
        C(
            "step_kind",
            "VARCHAR",
            "filter | transform | dedup | binarize | select | split | exclude",
        ),
        C("filter", "VARCHAR", "filter or policy the step ran"),
        C("params", "VARCHAR", "JSON of the step's parameters"),
        C("params_hash", "VARCHAR", "hash of filter name and parameters"),
        C("n_in", "BIGINT", "rows entering the step"),
        C("n_out", "BIGINT", "rows leaving the step; n_in = n_out + n_dropped"),
        C("n_dropped", "BIGINT", "rows the step dropped (all in drop_ledger)"),
        C("n_changed", "BIGINT", "rows a transform rewrote"),
        C(
            "n_would_drop",
            "BIGINT",
            "rows the step would drop on its own, among rows entering its stage",
        ),
        C("n_exclusive", "BIGINT", "rows only this step would drop within its stage"),
        C("note", "VARCHAR", "what else the step reported (split sizes asked vs got, ...)"),
        C("seconds", "DOUBLE", "wall time of the step (0 when served from the cache)"),
        C("peak_rss_mb", "DOUBLE", "process peak RSS after the step"),
        C("cache_key", "VARCHAR", "key of the step's cached decisions"),
        C("cached", "BOOLEAN", "true when the decisions came from the cache"),
    ),
)

SNAPSHOT_ROWS = Table(
    "snapshot_rows",
    "The rows of every snapshot split, in order. SFT snapshots fill prompt/prompt_id/messages; "
    "preference snapshots also fill chosen, rejected and the scores.",
    (
        C("snapshot_id", "VARCHAR", "snapshots.snapshot_id"),
        C("split", "VARCHAR", "train_sft | test_sft | train_gen | test_gen | train_prefs | ..."),
        C("ordinal", "BIGINT", "0-based position within the split"),
        C("row_id", "VARCHAR", "the source row (dialogue_id, prompt_uid or pair_id)"),
        C("prompt", "VARCHAR", "first user turn"),
        C("prompt_id", "VARCHAR", "sha256 of the prompt"),
        C("messages", MESSAGES, "SFT view of the row (gen splits end with a user turn)"),
        C("chosen", MESSAGES, "prompt + chosen answer (preferences)"),
        C("rejected", MESSAGES, "prompt + rejected answer (preferences)"),
        C("score_chosen", "DOUBLE", "score of the chosen answer"),
        C("score_rejected", "DOUBLE", "score of the rejected answer"),
        C("chosen_model", "VARCHAR", "model of the chosen answer, where known"),
        C("rejected_model", "VARCHAR", "model of the rejected answer, where known"),
        C("source", "VARCHAR", "UltraFeedback source subset, where known"),
    ),
)

DROP_LEDGER = Table(
    "drop_ledger",
    "Why each row was dropped from a snapshot: by which step, with which score or match.",
    (
        C("snapshot_id", "VARCHAR", "snapshots.snapshot_id"),
        C("step_index", "INTEGER", "snapshot_steps.step_index"),
        C("step_name", "VARCHAR", "snapshot_steps.step_name"),
        C("row_id", "VARCHAR", "the dropped row"),
        C("filter", "VARCHAR", "filter or policy that dropped it"),
        C("params_hash", "VARCHAR", "hash of filter name and parameters"),
        C("score", "DOUBLE", "the score the decision compared"),
        C("reason", "VARCHAR", "human-readable reason"),
        C("turn_index", "INTEGER", "turn that decided it, for per-turn filters"),
        C("matched", "VARCHAR", "what it matched: phrase, benchmark item, duplicate row"),
        C("cluster_id", "BIGINT", "dedup cluster"),
        C("representative", "VARCHAR", "row kept for the dedup cluster"),
        C("similarity", "DOUBLE", "similarity to the representative"),
    ),
)

DROP_OVERLAP = Table(
    "drop_overlap",
    "How many rows two steps of one stage would both drop (the diagonal: each step alone); "
    "a stage is a run of row-local steps scored on the same rows.",
    (
        C("snapshot_id", "VARCHAR", "snapshots.snapshot_id"),
        C("step_a", "VARCHAR", "a step name"),
        C("step_b", "VARCHAR", "a step name"),
        C("n_rows", "BIGINT", "rows both would drop"),
    ),
)

SNAPSHOT_TAGS = Table(
    "snapshot_tags",
    "Human names for snapshots (`curate tag SNAP NAME`); a tag names one snapshot.",
    (
        C("tag", "VARCHAR", "the name"),
        C("snapshot_id", "VARCHAR", "snapshots.snapshot_id"),
        C("created_at", "TIMESTAMP", "UTC time the tag was set"),
    ),
)

TRAINING_RUNS = Table(
    "training_runs",
    "One row per training run, linking a model folder to the exact snapshot it learned from.",
    (
        C("run_id", "VARCHAR", "r_ + timestamp and hash"),
        C("snapshot_id", "VARCHAR", "snapshots.snapshot_id"),
        C("trainer", "VARCHAR", "sft | dpo"),
        C("train_split", "VARCHAR", "split trained on"),
        C("eval_split", "VARCHAR", "split evaluated on, if any"),
        C("model", "VARCHAR", "base model id or path"),
        C("config", "VARCHAR", "JSON of the resolved trainer config"),
        C("code_version", "VARCHAR", "hash of the project source"),
        C("started_at", "TIMESTAMP", "UTC start"),
        C("ended_at", "TIMESTAMP", "UTC end"),
        C("status", "VARCHAR", "running | completed | failed | interrupted"),
        C("metrics", "VARCHAR", "JSON of final metrics"),
        C("output_dir", "VARCHAR", "where the model and tokenizer were saved"),
        C("error", "VARCHAR", "error message when failed"),
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
    SNAPSHOTS,
    SNAPSHOT_STEPS,
    SNAPSHOT_ROWS,
    DROP_LEDGER,
    DROP_OVERLAP,
    SNAPSHOT_TAGS,
    TRAINING_RUNS,
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
