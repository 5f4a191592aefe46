"""Run a recipe over the warehouse and commit the result as a snapshot.

How a run goes:

1. Plan: resolve the inputs (pinning ingest batches or snapshot ids), build every step's
   filter, and derive the snapshot id. If that snapshot exists, stop: it is the answer.
2. Compute, reading the warehouse only. Consecutive row-local steps (filters and
   transforms whose decision depends on the row alone) form a *stage*: one streaming pass
   scores every row entering the stage with every step, so each step's full drop set is
   known (the overlap matrix and exclusive drops come from it) and its cache entry does not
   depend on the thresholds of the steps before it. Whole-column steps (dedup), binarize,
   exclude, select and split act on the rows still alive.
3. Attribute: in recipe order, each dropped row is charged to the first step that drops it;
   that is the drop ledger, and in = out + dropped holds for every step.
4. Commit (unless dry run): one transaction writes the catalog row, steps, ledger, overlap
   and rows. Step results are cached as files first, so a killed run resumes from them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from curation import splits as split_policies
from curation.binarize import BinarizeResult, binarize
from curation.build import FilterFactory, filter_ref
from curation.code_version import code_version
from curation.inputs import InputPlan, plan_inputs
from curation.recipe import (
    BinarizeStep,
    DedupStep,
    ExcludeStep,
    FilterStep,
    Recipe,
    SelectStep,
    SplitStep,
    TransformStep,
    step_kind,
    step_name,
)
from curation.resources import PeakRss
from curation.sqltext import lit
from curation.working_set import WorkingSet
from filters import Filter
from filters.base import DECISION_SCHEMA
from filters.scope import ROW_ID, TURN_INDEX, Scope, rows_for
from filters.transform import RECORD_SCHEMA, Transform
from warehouse import snapshots
from warehouse.errors import BadInputError
from warehouse.step_cache import StepCache
from warehouse.store import Warehouse

LEDGER_COLUMNS = [c for c in DECISION_SCHEMA.names if c != "keep"]
SAMPLES_PER_STEP = 3
Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _hash(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _empty_ledger() -> pa.Table:
    return DECISION_SCHEMA.empty_table().select(LEDGER_COLUMNS)


@dataclass
class StepOutcome:
    """What one step did: counts, time, memory, cache use, and what it dropped."""

    index: int
    name: str
    kind: str
    filter: str
    params: dict[str, Any]
    params_hash: str = ""
    n_in: int = 0
    n_out: int = 0
    n_changed: int = 0
    n_would_drop: int | None = None
    n_exclusive: int | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    cache_key: str = ""
    cached: bool = False
    note: str = ""
    dropped: pa.Table = field(default_factory=_empty_ledger)
    samples: list[dict[str, Any]] = field(default_factory=list)
    # every row the step would drop on its own within its stage (for the overlap matrix)
    would_drop: pa.Array | None = None

    @property
    def n_dropped(self) -> int:
        return self.n_in - self.n_out

    def catalog_row(self) -> dict[str, Any]:
        return {
            "step_index": self.index,
            "step_name": self.name,
            "step_kind": self.kind,
            "filter": self.filter,
            "params": json.dumps(self.params, sort_keys=True),
            "params_hash": self.params_hash,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "n_dropped": self.n_dropped,
            "n_changed": self.n_changed,
            "n_would_drop": self.n_would_drop,
            "n_exclusive": self.n_exclusive,
            "seconds": round(self.seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "cache_key": self.cache_key,
            "cached": self.cached,
            "note": self.note,
        }


@dataclass
class RunResult:
    recipe: Recipe
    snapshot_id: str
    n_input: int
    steps: list[StepOutcome]
    splits: dict[str, int]
    dry_run: bool
    committed: bool = False
    existed: bool = False
    wall_s: float = 0.0
    overlap: pa.Table | None = None
    input_lineage: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_output_rows(self) -> int:
        return int(sum(self.splits.values()))


@dataclass
class RunOptions:
    dry_run: bool = False
    message: str = ""
    tags: list[str] = field(default_factory=list)
    progress: bool = True
    batch_size: int = 20_000
    use_cache: bool = True


class Runner:
    """One run of one recipe on one warehouse."""

    def __init__(
        self, recipe: Recipe, warehouse: Warehouse, options: RunOptions, log: Log = _stderr
    ) -> None:
        self.recipe = recipe
        self.warehouse = warehouse
        self.opt = options
        self.log = log
        self.cache = StepCache(warehouse)
        self.factory = FilterFactory(warehouse, progress=options.progress)
        self.filters: dict[str, Filter] = {}
        self.exclude_ids: dict[str, str] = {}

    # -- planning ----------------------------------------------------------------------
    def plan(self) -> tuple[InputPlan, str, dict[str, Any]]:
        with self.warehouse.read() as con:
            plan = plan_inputs(con, self.recipe)
            for step in self.recipe.steps:
                if isinstance(step, ExcludeStep):
                    self.exclude_ids[step_name(step)] = snapshots.resolve(
                        con, step.exclude.snapshot
                    )
        models: dict[str, Any] = {}
        for step in self.recipe.steps:
            if isinstance(step, FilterStep | TransformStep | DedupStep):
                f = self.factory.build(step)
                self.filters[step_name(step)] = f
                emb = getattr(f, "embedder", None)
                if emb is not None:
                    models[step_name(step)] = emb.model_id
        lineage = list(plan.lineage)
        for name, sid in self.exclude_ids.items():
            lineage.append({"snapshot": sid, "role": f"exclude ({name})"})
        sid = snapshots.snapshot_id_for(
            lineage, self.recipe.canonical_text(), code_version(), models, self.recipe.seed
        )
        plan.lineage = lineage
        return plan, sid, models

    # -- running -----------------------------------------------------------------------
    def run(self) -> RunResult:
        t0 = time.perf_counter()
        plan, sid, models = self.plan()
        result = RunResult(
            self.recipe, sid, plan.n_rows, [], {}, self.opt.dry_run, input_lineage=plan.lineage
        )
        if not self.opt.dry_run:
            with self.warehouse.read() as con:
                if snapshots.exists(con, sid):
                    result.existed = True
                    result.splits = snapshots.catalog_row(con, sid)["splits"]
            if result.existed:  # tagging needs the write lock: after the read closed
                self.log(f"snapshot {sid} already exists (same inputs, recipe, code, seed)")
                self._add_tags(sid)
                return result
        self.log(
            f"{'dry run of' if self.opt.dry_run else 'running'} {self.recipe.name}: "
            f"{plan.n_rows:,} input rows, snapshot {sid}"
        )
        ws = WorkingSet(self.warehouse, plan.sql, plan.n_rows)
        state = _hash("input", plan.lineage, code_version())
        assignment: pa.Table | None = None
        steps = list(enumerate(self.recipe.steps))
        i = 0
        while i < len(steps):
            idx, step = steps[i]
            if self._row_local(step):
                stage = [steps[i]]
                while i + 1 < len(steps) and self._row_local(steps[i + 1][1]):
                    i += 1
                    stage.append(steps[i])
                outcomes, state = self._run_stage(stage, ws, state)
                result.steps.extend(outcomes)
            else:
                outcome, state, got = self._run_whole(idx, step, ws, state, plan)
                result.steps.append(outcome)
                if not self.opt.dry_run:  # keep new embeddings even if a later step dies
                    self.factory.cache.flush()
                if got is not None:
                    assignment = got
            i += 1
        if assignment is None:  # no split step: one "train" split in input order
            assignment = self._default_assignment(ws)
        result.splits = _split_counts(assignment)
        result.overlap = _overlap_table(result.steps)
        result.wall_s = time.perf_counter() - t0
        if not self.opt.dry_run:
            self.factory.cache.flush()
            result.committed = self._commit(result, ws, assignment, models)
            result.wall_s = time.perf_counter() - t0
        return result

    def cache_keys(self) -> dict[str, tuple[str, list[str]]]:
        """step name -> (its cache key, keys of the earlier steps of its stage), derived
        without computing anything (keys depend on inputs and specs, not on results)."""
        plan, _, _ = self.plan()
        state = _hash("input", plan.lineage, code_version())
        out: dict[str, tuple[str, list[str]]] = {}
        steps = list(self.recipe.steps)
        i = 0
        while i < len(steps):
            if self._row_local(steps[i]):
                stage = [(i, steps[i])]
                while i + 1 < len(steps) and self._row_local(steps[i + 1]):
                    i += 1
                    stage.append((i, steps[i]))
                keys: list[str] = []
                transforms: list[str] = []
                for _, st in stage:
                    key = self._step_key(state, st, list(transforms))
                    out[step_name(st)] = (key, list(keys))
                    keys.append(key)
                    if isinstance(st, TransformStep):
                        transforms.append(key)
                state = _after_stage(state, keys, stage)
            else:
                key = _whole_key(state, steps[i].model_dump(mode="json"))
                out[step_name(steps[i])] = (key, [])
                state = _after_whole(key, steps[i])
            i += 1
        return out

    @staticmethod
    def _row_local(step: Any) -> bool:
        return isinstance(step, FilterStep | TransformStep) and not _is_whole(step)

    # -- stages of row-local steps --------------------------------------------------------
    def _step_key(self, state: str, step: Any, upstream_transforms: list[str]) -> str:
        spec = step.model_dump(mode="json")
        spec.pop("threshold", None)  # scores do not depend on a threshold override
        spec.pop("name", None)
        return _hash("rowlocal", state, upstream_transforms, spec, code_version())

    def _run_stage(
        self, stage: list[tuple[int, Any]], ws: WorkingSet, state: str
    ) -> tuple[list[StepOutcome], str]:
        n_enter = ws.n
        keys: list[str] = []
        transforms: list[str] = []
        for _, step in stage:
            key = self._step_key(state, step, list(transforms))
            keys.append(key)
            if isinstance(step, TransformStep):
                transforms.append(key)
        decisions: dict[int, pa.Table] = {}
        overlays: dict[int, pa.Table] = {}
        records: dict[int, pa.Table] = {}
        cached: set[int] = set()
        if self.opt.use_cache:
            for pos, (_, step) in enumerate(stage):
                d = self.cache.get(keys[pos], "decisions")
                o = self.cache.get(keys[pos], "overlay") if isinstance(step, TransformStep) else 0
                if d is not None and o is not None:
                    decisions[pos] = d
                    if isinstance(o, pa.Table):
                        overlays[pos] = o
                    cached.add(pos)
        # a cached transform after an uncached step would be applied out of order: recompute
        first_missing = next((p for p in range(len(stage)) if p not in cached), None)
        if first_missing is not None:
            for p in list(cached):
                if p > first_missing and isinstance(stage[p][1], TransformStep):
                    cached.discard(p)
        # transforms served from the cache before the first computed step rewrite the rows
        for pos in sorted(overlays):
            if first_missing is None or pos < first_missing:
                ws.add_overlay(overlays[pos])
        timings: dict[int, float] = {}
        peak = 0.0
        if first_missing is not None:
            todo = [p for p in range(len(stage)) if p >= first_missing and p not in cached]
            with PeakRss() as mem:
                got = self._stream(stage, todo, ws, timings)
            peak = mem.peak_mb
            for p, (d, o, r) in got.items():
                decisions[p] = d
                if o is not None:
                    overlays[p] = o
                    records[p] = r if r is not None else RECORD_SCHEMA.empty_table()
                    ws.add_overlay(o)
                if not self.opt.dry_run:
                    self.cache.put(keys[p], "decisions", d)
                    if o is not None:
                        self.cache.put(keys[p], "overlay", o)
                        self.cache.put(keys[p], "changes", records[p])
            if not self.opt.dry_run:
                self.factory.cache.flush()
        # attribution in recipe order
        outcomes = []
        would: dict[int, pa.Array] = {}
        for pos, (idx, step) in enumerate(stage):
            f = self.filters[step_name(step)]
            dec = decisions[pos]
            if step.__dict__.get("threshold") is not None and pos in cached:
                dec = self._redecide(f, dec, step.threshold)
            drops = dec.filter(pc.invert(dec.column("keep")))
            would[pos] = drops.column(ROW_ID).combine_chunks()
            n_in = ws.n
            charged = self._charge(ws, drops)
            out = StepOutcome(
                index=idx,
                name=step_name(step),
                kind=step_kind(step),
                filter=filter_ref(step),
                params=f.params.model_dump(mode="json"),
                params_hash=f.params_hash,
                n_in=n_in,
                n_would_drop=len(would[pos]),
                seconds=timings.get(pos, 0.0),
                peak_rss_mb=peak,
                cache_key=keys[pos],
                cached=pos in cached,
                dropped=charged,
                would_drop=would[pos],
            )
            if isinstance(f, Transform):
                out.n_changed = int(pc.sum(pc.greater(dec.column("score"), 0)).as_py() or 0)
            out.samples = self._samples(ws, charged)
            ws.drop(charged.column(ROW_ID))
            out.n_out = ws.n
            outcomes.append(out)
        for pos, out in enumerate(outcomes):
            others = [would[p] for p in would if p != pos]
            if others:
                union = pa.concat_arrays(others)
                out.n_exclusive = int(
                    pc.sum(pc.invert(pc.is_in(would[pos], value_set=union))).as_py() or 0
                )
            else:
                out.n_exclusive = out.n_would_drop
        new_state = _after_stage(state, keys, stage)
        if n_enter != outcomes[0].n_in:  # pragma: no cover - an internal invariant
            raise AssertionError("stage bookkeeping lost rows")
        return outcomes, new_state

    def _stream(
        self,
        stage: list[tuple[int, Any]],
        todo: list[int],
        ws: WorkingSet,
        timings: dict[int, float],
    ) -> dict[int, tuple[pa.Table, pa.Table | None, pa.Table | None]]:
        """One pass over the alive rows computing the steps in `todo` (in order)."""
        parts: dict[int, list[pa.Table]] = {p: [] for p in todo}
        over: dict[int, list[pa.Table]] = {p: [] for p in todo}
        recs: dict[int, list[pa.Table]] = {p: [] for p in todo}
        names = ", ".join(step_name(stage[p][1]) for p in todo)
        bar = tqdm(
            total=ws.n,
            desc=f"  {names}"[:60],
            unit="rows",
            disable=not self.opt.progress,
            file=sys.stderr,
            leave=False,
        )
        for batch in ws.batches(self.opt.batch_size):
            for p in todo:
                step = stage[p][1]
                f = self.filters[step_name(step)]
                t = time.perf_counter()
                threshold = step.__dict__.get("threshold")
                if isinstance(f, Transform):
                    new_batch, res = f.apply_transform(batch)
                    rows = rows_for(batch, Scope.ALL_TURNS)
                    scores = pa.table(
                        {
                            ROW_ID: rows.column(ROW_ID),
                            TURN_INDEX: rows.column(TURN_INDEX),
                            "score": pc.cast(res.n_edits, pa.float64()),
                        }
                    )
                    dec = f.decisions_from_scores(scores, batch.column(ROW_ID), threshold)
                    changed_rows = pc.greater(dec.column("score"), 0)
                    over[p].append(
                        _owned(new_batch.filter(changed_rows).select([ROW_ID, "messages"]))
                    )
                    recs[p].append(res.records)
                    batch = new_batch
                else:
                    dec = f.apply(batch, threshold).decisions
                parts[p].append(_owned(dec))
                timings[p] = timings.get(p, 0.0) + time.perf_counter() - t
            bar.update(batch.num_rows)
        bar.close()
        out: dict[int, tuple[pa.Table, pa.Table | None, pa.Table | None]] = {}
        for p in todo:
            d = pa.concat_tables(parts[p]) if parts[p] else DECISION_SCHEMA.empty_table()
            if isinstance(self.filters[step_name(stage[p][1])], Transform):
                o = _concat_or_empty(over[p])
                r = pa.concat_tables(recs[p]) if recs[p] else RECORD_SCHEMA.empty_table()
                out[p] = (d, o, r)
            else:
                out[p] = (d, None, None)
        return out

    @staticmethod
    def _redecide(f: Filter, decisions: pa.Table, threshold: float | None) -> pa.Table:
        """Decisions at another threshold from stored scores (no rescoring)."""
        scores = decisions.drop_columns(["filter", "params_hash", "keep", "reason"])
        keep_cols = [c for c in scores.column_names if scores.column(c).null_count < len(scores)]
        scores = scores.select([c for c in keep_cols if c != TURN_INDEX] or [ROW_ID, "score"])
        return f.decisions_from_scores(scores, scores.column(ROW_ID), threshold)

    # -- whole-set steps ---------------------------------------------------------------
    def _run_whole(
        self, idx: int, step: Any, ws: WorkingSet, state: str, plan: InputPlan
    ) -> tuple[StepOutcome, str, pa.Table | None]:
        name = step_name(step)
        spec = step.model_dump(mode="json")
        key = _whole_key(state, spec)
        out = StepOutcome(idx, name, step_kind(step), "", {}, n_in=ws.n, cache_key=key)
        assignment = None
        with PeakRss() as mem:
            if isinstance(step, FilterStep | DedupStep):
                f = self.filters[name]
                out.filter, out.params = filter_ref(step), f.params.model_dump(mode="json")
                out.params_hash = f.params_hash
                dec = self.cache.get(key, "decisions") if self.opt.use_cache else None
                out.cached = dec is not None
                if dec is None:
                    self.log(f"  {name}: reading {ws.n:,} rows for a whole-column step")
                    table = ws.read_all()
                    dec = _owned(f.apply(table, step.threshold).decisions)
                    del table
                    if not self.opt.dry_run:
                        self.cache.put(key, "decisions", dec)
                drops = dec.filter(pc.invert(dec.column("keep")))
                out.n_would_drop = drops.num_rows
            elif isinstance(step, BinarizeStep):
                out.filter, out.params = step.binarize.policy, step.binarize.model_dump(mode="json")
                out.params_hash = _hash(out.params)[:16]
                pairs = self.cache.get(key, "pairs") if self.opt.use_cache else None
                dropped = self.cache.get(key, "dropped") if pairs is not None else None
                out.cached = pairs is not None and dropped is not None
                if pairs is None or dropped is None:
                    res = self._binarize(ws, step)
                    pairs, dropped = res.pairs, res.dropped
                    if not self.opt.dry_run:
                        self.cache.put(key, "pairs", pairs)
                        self.cache.put(key, "dropped", dropped)
                drops = _ledger_rows(dropped, "binarize", out.params_hash)
                ws_prompts = ws.n
                out.samples = self._samples(ws, drops)
                ws.replace_with(pairs)
                out.n_in, out.n_out = ws_prompts, ws_prompts - drops.num_rows
                n_pairs = pairs.num_rows
                n_prompts = int(
                    pc.count_distinct(pairs.column("prompt_id")).as_py() if n_pairs else 0
                )
                out.note = f"{n_pairs:,} pairs from {n_prompts:,} prompts"
                out.dropped = drops
            elif isinstance(step, ExcludeStep):
                other = self.exclude_ids[name]
                out.filter, out.params = "exclude", {"snapshot": other, "by": step.exclude.by}
                hits = ws.query(
                    "SELECT row_id, prompt_id AS matched FROM {ws} WHERE prompt_id IN "
                    f"(SELECT prompt_id FROM snapshot_rows WHERE snapshot_id = {lit(other)})"
                )
                drops = _ledger_from(
                    hits, "exclude", f"exclude: prompt also in snapshot {other}", 1.0
                )
            elif isinstance(step, SelectStep):
                n = step.select.n
                if n is None:
                    n = round(ws.n * float(step.select.fraction or 1.0))
                out.filter, out.params = "select", step.select.model_dump(mode="json")
                ranked = ws.query(
                    "SELECT row_id FROM {ws} "
                    f"ORDER BY md5({lit(str(self.recipe.seed))} || ':' || row_id) OFFSET {int(n)}"
                )
                drops = _ledger_from(
                    ranked, "select", f"select: outside the seeded sample of {n:,}", None
                )
            elif isinstance(step, SplitStep):
                out.filter, out.params = step.split.policy, step.split.model_dump(mode="json")
                split_plan = self._split(ws, step, plan)
                assignment = split_plan.assignments
                chosen = assignment.column(ROW_ID)
                rest = ws.alive_ids()
                left = pa.table({ROW_ID: rest.filter(pc.invert(pc.is_in(rest, value_set=chosen)))})
                drops = _ledger_from(
                    left,
                    step.split.policy,
                    f"split: not selected for any {step.split.policy} split (subset size)",
                    None,
                )
                asked = ", ".join(f"{k} {v:,}" for k, v in split_plan.requested.items())
                got = ", ".join(f"{k} {v:,}" for k, v in split_plan.got.items())
                out.note = f"asked {asked}; got {got}" + "".join(f"; {n}" for n in split_plan.notes)
            else:  # pragma: no cover - the recipe model admits no other step
                raise BadInputError(f"step {name}: unknown kind")
            if not isinstance(step, BinarizeStep):
                out.samples = self._samples(ws, drops)
                out.dropped = self._charge(ws, drops)
                ws.drop(out.dropped.column(ROW_ID))
                out.n_out = ws.n
        out.seconds, out.peak_rss_mb = mem.seconds, mem.peak_mb
        return out, _after_whole(key, step), assignment

    def _binarize(self, ws: WorkingSet, step: BinarizeStep) -> BinarizeResult:
        with ws.connection() as con:
            con.execute(f"CREATE TEMP VIEW ws_prompts AS {ws.relation_sql()}")
            try:
                return binarize(con, "ws_prompts", "uf_completions", step.binarize)
            finally:
                con.execute("DROP VIEW IF EXISTS ws_prompts")

    def _split(self, ws: WorkingSet, step: SplitStep, plan: InputPlan) -> Any:
        ids = ws.query("SELECT row_id, ord FROM {ws} ORDER BY ord").column(ROW_ID)
        cfg = step.split
        if cfg.policy == "h4_prefs":
            kwargs: dict[str, Any] = {"seed": self.recipe.seed}
            if cfg.test_size is not None:
                kwargs["test_size"] = cfg.test_size
            return split_policies.assign_h4_prefs(ids, **kwargs)
        return split_policies.assign_ultrachat_200k(
            ids, n_input=plan.n_rows, seed=self.recipe.seed, sizes=cfg.sizes
        )

    def _default_assignment(self, ws: WorkingSet) -> pa.Table:
        ids = ws.query("SELECT row_id FROM {ws} ORDER BY ord").column(ROW_ID).combine_chunks()
        n = len(ids)
        return pa.table(
            {
                "split": pa.array(["train"] * n, pa.string()),
                "ordinal": pa.array(np.arange(n, dtype=np.int64)),
                ROW_ID: ids,
                "gen": pa.array(np.zeros(n, dtype=bool)),
            }
        )

    # -- ledger helpers ----------------------------------------------------------------
    @staticmethod
    def _charge(ws: WorkingSet, drops: pa.Table) -> pa.Table:
        """The drops that hit rows still alive (earlier steps own the others)."""
        drops = drops.select(LEDGER_COLUMNS)
        if drops.num_rows == 0:
            return drops
        alive = ws.alive_ids()
        return drops.filter(pc.is_in(drops.column(ROW_ID), value_set=alive))

    def _samples(self, ws: WorkingSet, drops: pa.Table) -> list[dict[str, Any]]:
        if drops.num_rows == 0:
            return []
        ids = drops.column(ROW_ID).combine_chunks()
        order = pc.sort_indices(ids)
        pick = drops.take(order.slice(0, SAMPLES_PER_STEP))
        wanted = pick.column(ROW_ID).to_pylist()
        text = ws.query(
            "SELECT row_id, left(coalesce(prompt, ''), 160) AS prompt FROM {ws} "
            f"WHERE row_id IN ({', '.join(lit(w) for w in wanted)})"
        )
        prompts = dict(
            zip(text.column(ROW_ID).to_pylist(), text.column("prompt").to_pylist(), strict=True)
        )
        rows = pick.select([ROW_ID, "reason", "score", "matched"]).to_pylist()
        for r in rows:
            r["prompt"] = prompts.get(r[ROW_ID], "")
        return rows

    # -- commit ------------------------------------------------------------------------
    def _add_tags(self, sid: str) -> None:
        if self.opt.tags and not self.opt.dry_run:
            with self.warehouse.write() as con:
                for tag in self.opt.tags:
                    snapshots.set_tag(con, sid, tag)

    def _commit(
        self, result: RunResult, ws: WorkingSet, assignment: pa.Table, models: dict[str, Any]
    ) -> bool:
        ledger = pa.concat_tables(
            [
                o.dropped.append_column(
                    "step_index", pa.array([o.index] * o.dropped.num_rows, pa.int32())
                ).append_column("step_name", pa.array([o.name] * o.dropped.num_rows, pa.string()))
                for o in result.steps
            ]
            or [_empty_ledger()]
        )
        steps_table = pa.Table.from_pylist([o.catalog_row() for o in result.steps])
        meta = snapshots.SnapshotMeta(
            snapshot_id=result.snapshot_id,
            kind=self.recipe.output,
            recipe_name=self.recipe.name,
            recipe_text=self.recipe.canonical_text(),
            inputs=result.input_lineage,
            code_version=code_version(),
            model_versions=models,
            seed=self.recipe.seed,
            message=self.opt.message,
            wall_s=result.wall_s,
        )
        with self.warehouse.write(memory_limit="4GB") as con:
            con.register("mat_assign", assignment)
            src = ws.register(con)
            committed = snapshots.commit_snapshot(
                con,
                meta,
                rows_sql=_rows_sql(self.recipe.output, src),
                steps=steps_table if result.steps else None,
                ledger=ledger,
                overlap=result.overlap,
                tags=list(self.opt.tags),
            )
        return committed


# -- module helpers ----------------------------------------------------------------------
def _owned(table: pa.Table) -> pa.Table:
    """A copy in Arrow's own memory. A batch read from DuckDB is one allocation: keeping
    any slice of it (a row_id column in the decisions, say) keeps the whole batch, messages
    included, alive."""
    n = table.num_rows
    idx = pa.array(np.arange(n, dtype=np.int64))
    return pa.table(
        {
            name: pc.take(col, idx)
            for name, col in zip(table.column_names, table.columns, strict=True)
        }
    )


def _whole_key(state: str, spec: dict[str, Any]) -> str:
    return _hash("whole", state, spec, code_version())


def _after_whole(key: str, step: Any) -> str:
    return _hash("state", key)


def _after_stage(state: str, keys: list[str], stage: list[tuple[int, Any]]) -> str:
    thresholds = [s.__dict__.get("threshold") for _, s in stage]
    return _hash("stage", state, keys, thresholds)


def _is_whole(step: FilterStep | TransformStep | DedupStep) -> bool:
    if isinstance(step, DedupStep):
        return True
    from filters import load_filter

    try:
        return bool(load_filter(filter_ref(step)).whole_column)
    except Exception:  # an unknown filter errors clearly later, when it is built
        return False


def _concat_or_empty(parts: list[pa.Table]) -> pa.Table:
    if parts:
        return pa.concat_tables(parts)
    return pa.table({ROW_ID: pa.array([], pa.string())}).append_column(
        "messages",
        pa.array([], pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    )


def _ledger_rows(dropped: pa.Table, name: str, params_hash: str) -> pa.Table:
    n = dropped.num_rows
    cols: dict[str, Any] = {
        ROW_ID: dropped.column(ROW_ID),
        "filter": pa.array([name] * n, pa.string()),
        "params_hash": pa.array([params_hash] * n, pa.string()),
        "score": dropped.column("score").cast(pa.float64()),
        "reason": dropped.column("reason"),
    }
    for c in LEDGER_COLUMNS:
        if c not in cols:
            cols[c] = pa.nulls(n, DECISION_SCHEMA.field(c).type)
    return pa.table({c: cols[c] for c in LEDGER_COLUMNS})


def _ledger_from(rows: pa.Table, name: str, reason: str, score: float | None) -> pa.Table:
    n = rows.num_rows
    base = pa.table(
        {
            ROW_ID: rows.column(ROW_ID),
            "score": pa.array([score] * n, pa.float64()),
            "reason": pa.array([reason] * n, pa.string()),
        }
    )
    out = _ledger_rows(base, name, "")
    if "matched" in rows.column_names:
        out = out.set_column(
            out.schema.get_field_index("matched"), "matched", rows.column("matched")
        )
    return out


def _split_counts(assignment: pa.Table) -> dict[str, int]:
    if assignment.num_rows == 0:
        return {}
    counts = assignment.group_by("split").aggregate([(ROW_ID, "count")])
    return {
        str(s): int(c)
        for s, c in zip(
            counts.column("split").to_pylist(),
            counts.column(f"{ROW_ID}_count").to_pylist(),
            strict=True,
        )
    }


def _overlap_table(steps: list[StepOutcome]) -> pa.Table:
    """Pairs of steps of one stage and the rows both would drop (diagonal: alone)."""
    a_names, b_names, counts = [], [], []
    stages: list[list[StepOutcome]] = []
    for o in steps:
        if o.would_drop is None or o.kind not in ("filter", "transform"):
            stages.append([])
            continue
        if stages and stages[-1] and stages[-1][-1].index == o.index - 1:
            stages[-1].append(o)
        else:
            stages.append([o])
    for stage in stages:
        for a in stage:
            for b in stage:
                assert a.would_drop is not None and b.would_drop is not None
                both = int(pc.sum(pc.is_in(a.would_drop, value_set=b.would_drop)).as_py() or 0)
                a_names.append(a.name)
                b_names.append(b.name)
                counts.append(both)
    return pa.table(
        {
            "step_a": pa.array(a_names, pa.string()),
            "step_b": pa.array(b_names, pa.string()),
            "n_rows": pa.array(counts, pa.int64()),
        }
    )


_CUT = (
    "list_slice({m}, 1, len({m}) - coalesce(list_position(list_reverse("
    "list_transform({m}, x -> x.role)), 'user'), 1) + 1)"
)


def _rows_sql(kind: str, src: str) -> str:
    """SELECT of the snapshot rows: the assignment joined to the surviving rows; gen rows cut
    after their last user turn."""
    cut = _CUT.format(m="r.messages")
    common = (
        "a.split, a.ordinal, a.row_id, r.prompt, r.prompt_id, "
        f"CASE WHEN a.gen THEN {cut} ELSE r.messages END AS messages"
    )
    if kind == "sft":
        cols = common
    else:
        cols = (
            f"{common}, r.chosen, r.rejected, r.score_chosen, r.score_rejected, "
            "r.chosen_model, r.rejected_model, r.source"
        )
    return (
        f"SELECT {cols} FROM mat_assign a JOIN {src} r USING (row_id) ORDER BY a.split, a.ordinal"
    )


def run_recipe(
    recipe: Recipe, warehouse: Warehouse, options: RunOptions | None = None, log: Log = _stderr
) -> RunResult:
    return Runner(recipe, warehouse, options or RunOptions(), log).run()
