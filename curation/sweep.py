"""Threshold sweeps from stored scores: how many rows a step keeps at each value.

Scores do not depend on the threshold (scoring and deciding are separate), so a sweep reads
the step's cached scores from the last real run and re-decides them; nothing is recomputed.
Dedup filters form their clusters at the run's threshold, so for them values below it are
lower bounds on what a rerun would drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from curation.recipe import Recipe
from curation.runner import Runner, RunOptions
from warehouse.errors import BadInputError
from warehouse.store import Warehouse


@dataclass
class SweepRow:
    value: float
    n_scored: int
    kept: int
    dropped: int
    dropped_after_earlier: int | None  # drops among rows earlier steps of its stage keep


def sweep(
    recipe: Recipe, warehouse: Warehouse, step: str, param: str, values: list[float]
) -> tuple[list[SweepRow], str]:
    if param != "threshold":
        raise BadInputError(
            f"only `threshold` can be swept from stored scores; {param!r} changes the scores "
            "themselves (edit the recipe and rerun it: unchanged steps come from the cache)"
        )
    recipe.step(step)
    runner = Runner(recipe, warehouse, RunOptions(dry_run=True, progress=False), log=lambda m: None)
    keys = runner.cache_keys()
    if step not in keys or step not in runner.filters:
        raise BadInputError(f"step {step!r} is not a filter step: nothing to sweep")
    key, earlier = keys[step]
    stored = runner.cache.get(key, "decisions")
    if stored is None:
        raise BadInputError(
            f"no stored scores for step {step!r} of {recipe.name} on these inputs: run the "
            f"recipe once (`curate run`), then sweep"
        )
    f = runner.filters[step]
    scores = Runner._redecide(f, stored, None)
    earlier_parts = []
    complete = True
    for k in earlier:
        d = runner.cache.get(k, "decisions")
        if d is None:  # an earlier step's scores are gone: no "after earlier" column
            complete = False
            break
        earlier_parts.append(d.filter(pc.invert(d.column("keep"))).column("row_id"))
    earlier_drops = (
        pa.chunked_array([c for p in earlier_parts for c in p.chunks], pa.string())
        if earlier_parts
        else None
    )
    out = []
    for v in values:
        dec = Runner._redecide(f, scores, v)
        drop_mask = pc.invert(dec.column("keep"))
        n_drop = int(pc.sum(drop_mask).as_py() or 0)
        after: int | None = None
        if complete and earlier_drops is not None:
            ids = dec.filter(drop_mask).column("row_id")
            after = int(pc.sum(pc.invert(pc.is_in(ids, value_set=earlier_drops))).as_py() or 0)
        elif complete:
            after = n_drop
        out.append(SweepRow(float(v), dec.num_rows, dec.num_rows - n_drop, n_drop, after))
    threshold = f.params.threshold
    return out, f"{f.name} (run at threshold {threshold})"
