"""SQL expressions that name the first problem of a record, or give NULL when it is fine.

Validation runs in DuckDB over a whole chunk at once; each expression yields a reason that
names the field (for example `messages[3].role: expected assistant, got user`).
"""

from __future__ import annotations


def blank(expr: str) -> str:
    """True when a string is NULL or only whitespace (a regex stops at the first other
    character, where trim() would copy the whole string)."""
    return f"({expr} IS NULL OR regexp_full_match({expr}, '\\s*'))"


def first(*checks: tuple[str, str]) -> str:
    """CASE over (condition, reason-expression) pairs: the first failing check wins."""
    whens = "\n  ".join(f"WHEN {cond} THEN {reason}" for cond, reason in checks)
    return f"CASE\n  {whens}\n  ELSE NULL END"


def required_text(col: str, field: str) -> tuple[str, str]:
    return (blank(col), f"'{field}: missing or empty'")


def _expected_role(col: str) -> str:
    # An optional system message first, then user/assistant alternating from user.
    off = f"(CASE WHEN {col}[1].role = 'system' THEN 1 ELSE 0 END)"
    return (
        f"CASE WHEN i = 1 AND {col}[1].role = 'system' THEN 'system' "
        f"WHEN (i - {off}) % 2 = 1 THEN 'user' ELSE 'assistant' END"
    )


def messages_checks(col: str, field: str) -> list[tuple[str, str]]:
    """Checks for a LIST<STRUCT(role, content)> column: present, non-empty, valid roles,
    non-empty content, and role order (system?, user, assistant, user, ...)."""
    bad_role = (
        f"list_position(list_transform({col}, m -> m.role IS NULL OR "
        f"m.role NOT IN ('system', 'user', 'assistant')), true)"
    )
    empty = f"list_position(list_transform({col}, m -> {blank('m.content')}), true)"
    order = f"list_position(list_transform({col}, (m, i) -> m.role <> {_expected_role(col)}), true)"
    return [
        (f"{col} IS NULL", f"'{field}: missing'"),
        (f"len({col}) = 0", f"'{field}: empty list'"),
        (
            f"{bad_role} IS NOT NULL",
            f"'{field}[' || ({bad_role} - 1) || '].role: unknown role ' || "
            f"coalesce('''' || {col}[{bad_role}].role || '''', 'NULL')",
        ),
        (
            f"{empty} IS NOT NULL",
            f"'{field}[' || ({empty} - 1) || '].content: empty'",
        ),
        (
            f"{order} IS NOT NULL",
            f"'{field}[' || ({order} - 1) || '].role: broken role order, got ' || "
            f"{col}[{order}].role",
        ),
    ]


def text_list_checks(col: str, field: str) -> list[tuple[str, str]]:
    """Checks for a LIST<VARCHAR> of utterances (raw UltraChat `data`)."""
    empty = f"list_position(list_transform({col}, x -> {blank('x')}), true)"
    return [
        (f"{col} IS NULL", f"'{field}: missing'"),
        (f"len({col}) = 0", f"'{field}: empty list'"),
        (f"{empty} IS NOT NULL", f"'{field}[' || ({empty} - 1) || ']: empty'"),
    ]


def prompt_id_check(prompt: str, prompt_id: str) -> tuple[str, str]:
    """A published prompt_id must equal sha256(prompt): anything else is corruption."""
    return (
        f"{prompt_id} IS NOT NULL AND {prompt_id} <> sha256({prompt})",
        "'prompt_id: does not equal sha256(prompt)'",
    )


def messages_stats(col: str) -> str:
    """Derived columns shared by every table holding a dialogue."""
    return (
        f"len({col})::INTEGER AS n_turns, "
        f"len(list_filter({col}, m -> m.role = 'user'))::INTEGER AS n_user_turns, "
        f"len(list_filter({col}, m -> m.role = 'assistant'))::INTEGER AS n_assistant_turns, "
        f"{col}[-1].role AS last_role, "
        f"list_sum(list_transform({col}, m -> length(m.content)))::BIGINT AS n_chars, "
        f"list_max(list_transform({col}, m -> length(m.content)))::INTEGER AS max_turn_chars"
    )


def first_user_content(col: str) -> str:
    """Ingest guarantees an optional system message and then the user."""
    return f"CASE WHEN {col}[1].role = 'user' THEN {col}[1].content ELSE {col}[2].content END"
