"""The filter contract: scopes, scoring vs deciding, aggregation, decisions, sweeps."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from filters import (
    DECISION_SCHEMA,
    PersonaFilter,
    Scope,
    SqlFilter,
    explode_turns,
    load_filter,
    scorer,
)
from filters.scope import first_user_turn


def dialogues(*convs: list[tuple[str, str]]) -> pa.Table:
    msg = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.table(
        {
            "row_id": [f"d{i}" for i in range(len(convs))],
            "messages": pa.array(
                [[{"role": r, "content": c} for r, c in conv] for conv in convs], pa.list_(msg)
            ),
            "n_turns": [len(c) for c in convs],
        }
    )


BATCH = dialogues(
    [("user", "Hi"), ("assistant", "Hello! How can I help?")],
    [
        ("user", "Do you feel sad?"),
        ("assistant", "As an AI language model, I do not have emotions."),
    ],
    [
        ("user", "As an AI language model, what do you think?"),
        ("assistant", "Researchers debate whether an AI language model can have emotions."),
    ],
    [
        ("system", "be brief"),
        ("user", "Weather?"),
        ("assistant", "Sunny."),
        ("user", "Can you check online?"),
        ("assistant", "Sorry, I can’t browse the internet."),
    ],
)


def test_explode_turns_is_columnar_and_ordered() -> None:
    turns = explode_turns(BATCH)
    assert turns.num_rows == 11
    assert turns.column("turn_index").to_pylist()[:4] == [0, 1, 0, 1]
    assistant = explode_turns(BATCH, "assistant")
    assert assistant.column("row_id").to_pylist() == ["d0", "d1", "d2", "d3", "d3"]
    assert assistant.column("turn_index").to_pylist() == [1, 1, 1, 2, 4]
    first = first_user_turn(BATCH)
    assert first.column("content").to_pylist() == [
        "Hi",
        "Do you feel sad?",
        "As an AI language model, what do you think?",
        "Weather?",
    ]


def test_persona_fires_on_assistant_self_description_only() -> None:
    res = PersonaFilter().apply(BATCH)
    assert res.decisions.schema == DECISION_SCHEMA
    keep = dict(
        zip(
            res.decisions.column("row_id").to_pylist(),
            res.decisions.column("keep").to_pylist(),
            strict=True,
        )
    )
    assert keep == {"d0": True, "d1": False, "d2": True, "d3": False}
    reasons = res.dropped().column("reason").to_pylist()
    assert reasons[0].startswith("persona: score 3 >= 1 (matched as_an_ai)")
    assert "no_browsing" in reasons[1]  # curly apostrophe variant
    per_turn = res.scores.filter(pc.greater(res.scores.column("score"), 0))
    assert per_turn.column("turn_index").to_pylist() == [1, 4]
    assert (res.stats.n_in, res.stats.n_kept, res.stats.n_dropped) == (4, 2, 2)


def test_scores_are_reusable_for_sweeps_and_dry_runs() -> None:
    f = PersonaFilter()
    per_row = f.aggregate_scores(f.score(explode_turns(BATCH, "assistant")), BATCH.column("row_id"))
    assert per_row.column("row_id").to_pylist() == ["d0", "d1", "d2", "d3"]
    assert f.sweep(per_row, [1, 2, 3, 4]) == [(1.0, 2, 2), (2.0, 3, 1), (3.0, 3, 1), (4.0, 4, 0)]
    assert f.decide(per_row, threshold=2).column("keep").to_pylist() == [True, False, True, True]


def test_params_hash_changes_with_params_and_is_stable() -> None:
    a, b = PersonaFilter(), PersonaFilter(extra_phrases=["as a digital being"])
    assert a.params_hash == PersonaFilter().params_hash != b.params_hash
    with pytest.raises(ValueError):
        PersonaFilter(no_such_param=1)


def test_extra_phrases_are_literal_and_case_insensitive() -> None:
    f = PersonaFilter(patterns={}, extra_phrases=["As a digital being (v2)"])
    batch = dialogues(
        [("user", "q"), ("assistant", "as a DIGITAL being (v2) I think")],
        [("user", "q"), ("assistant", "as a digital being v2")],
    )
    assert f.apply(batch).decisions.column("keep").to_pylist() == [False, True]


def test_decorated_function_is_a_filter() -> None:
    @scorer("short_reply", Scope.ASSISTANT_TURNS, threshold=10, drop_when="below", aggregate="min")
    def reply_chars(rows: pa.Table) -> pa.Array:
        return pc.utf8_length(rows.column("content"))

    res = reply_chars().apply(BATCH)
    assert res.decisions.column("keep").to_pylist() == [True, True, True, False]
    assert res.dropped().column("reason").to_pylist() == ["short_reply: score 6 < 10"]
    assert reply_chars(threshold=5).apply(BATCH).stats.n_dropped == 0


def test_sql_filter_keeps_rows_where_the_predicate_holds() -> None:
    f = SqlFilter(name="enough_turns", predicate="n_turns >= 4")
    assert f.apply(BATCH).decisions.column("keep").to_pylist() == [False, False, False, True]
    per_turn = SqlFilter(
        name="no_sorry",
        predicate="NOT contains(lower(content), 'sorry')",
        scope=Scope.ASSISTANT_TURNS,
    )
    assert per_turn.apply(BATCH).decisions.column("keep").to_pylist() == [True, True, True, False]
    with pytest.raises(ValueError, match="predicate failed"):
        SqlFilter(predicate="no_such_column > 1").apply(BATCH)


def test_load_filter_by_name_or_import_path() -> None:
    assert load_filter("persona") is PersonaFilter
    assert load_filter("filters.sql:SqlFilter") is SqlFilter
    with pytest.raises(ValueError):
        load_filter("nope")


def test_persona_lead_in_and_no_threshold() -> None:
    batch = dialogues(
        [("user", "q"), ("assistant", "Honestly, as an AI language model, I cannot say.")],
        [("user", "q"), ("assistant", "He wrote as an AI language model would write.")],
    )
    assert PersonaFilter().apply(batch).decisions.column("keep").to_pylist() == [False, True]
    scored_only = PersonaFilter(threshold=None).apply(batch)
    assert scored_only.decisions.column("keep").to_pylist() == [True, True]
    assert scored_only.decisions.column("reason").null_count == 2
    assert scored_only.decisions.column("score").to_pylist()[0] >= 1


def test_every_builtin_name_loads_a_filter_with_that_name() -> None:
    from filters import BUILTIN

    for name in BUILTIN:
        cls = load_filter(name)
        assert cls.name == name


def test_sum_aggregation_adds_turn_scores_per_dialogue() -> None:
    @scorer("assistant_chars", Scope.ASSISTANT_TURNS, threshold=30, aggregate="sum")
    def chars(rows: pa.Table) -> pa.Array:
        return pc.utf8_length(rows.column("content"))

    res = chars().apply(BATCH)
    # d3 has two assistant turns: 6 + 35 characters
    assert res.decisions.column("score").to_pylist() == [22.0, 48.0, 66.0, 41.0]
    assert res.decisions.column("keep").to_pylist() == [True, False, False, False]
