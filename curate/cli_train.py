"""`curate train sft|dpo` and `curate runs`: training on a snapshot, and the run records.

A Typer sub-app registered by curate/cli.py. Like the other commands it only composes package
functions: training.runner does the work, warehouse.runs reads the records. Errors are
CurateError subclasses, which curate.cli.main maps to exit codes. `--warehouse` may be given
here or before the command (`curate --warehouse W train sft ...`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from curate import output

train_app = typer.Typer(
    name="train",
    help="Train with TRL (SFT or DPO) on a snapshot, from an alignment-handbook recipe YAML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

SnapshotOpt = Annotated[
    str,
    typer.Option(
        "--snapshot", "-s", help="Snapshot id, unique id prefix, or tag.", show_default=False
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Recipe YAML (alignment-handbook keys). Default: small SmolLM2 CPU settings.",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a recipe key: --set key=value (YAML value; repeatable).",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        "-o",
        help="Model folder (default: the recipe's output_dir, else runs/ beside the warehouse).",
    ),
]
FreshOpt = Annotated[
    bool, typer.Option("--fresh", help="Start over instead of resuming from a checkpoint.")
]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Check the recipe and snapshot, print the plan, load nothing."),
]
WarehouseOpt = Annotated[
    Path | None,
    typer.Option("--warehouse", "-w", help="Warehouse file (default: as for every command)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _warehouse(path: Path | None) -> Any:
    """This command's --warehouse, else the one given to `curate` itself."""
    from warehouse.store import Warehouse

    if path is not None:
        return Warehouse(path)
    from curate.cli import _State  # imported here: curate.cli imports this module

    return _State.warehouse()


def _train(
    trainer: str,
    snapshot: str,
    config: Path | None,
    overrides: list[str] | None,
    output_dir: Path | None,
    fresh: bool,
    dry_run: bool,
    warehouse: Path | None,
    as_json: bool,
) -> None:
    from training.runner import TrainPlan, TrainRequest, train

    wh = _warehouse(warehouse)
    request = TrainRequest(
        trainer="sft" if trainer == "sft" else "dpo",
        snapshot=snapshot,
        warehouse=wh.path,
        config=config,
        overrides=list(overrides or []),
        output_dir=output_dir,
        fresh=fresh,
        dry_run=dry_run,
    )
    result = train(request, log=_log)
    if isinstance(result, TrainPlan):
        summary = result.summary()
        if as_json:
            output.print_json(summary)
            return
        rows = [{"setting": k, "value": v} for k, v in summary.items() if k != "config"]
        rows += [
            {"setting": f"trainer_args.{k}", "value": v}
            for k, v in sorted(summary["config"]["trainer_args"].items())
        ]
        output.print_rows(rows, title="plan (dry run: nothing loaded, nothing recorded)")
        return
    if as_json:
        output.print_json(result.as_dict())
        return
    shown = ("global_step", "first_loss", "last_loss", "eval_loss", "train_runtime")
    rows = [{"metric": k, "value": result.metrics[k]} for k in shown if k in result.metrics]
    output.print_rows(rows, title=f"run {result.run_id} ({result.status})")
    print(f"model:      {result.output_dir}")
    print(f"model card: {result.model_card}")
    print(f"run record: curate runs --snapshot {result.snapshot_id}  (run_id {result.run_id})")


@train_app.command("sft")
def sft(
    snapshot: SnapshotOpt,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    output_dir: OutputOpt = None,
    fresh: FreshOpt = False,
    dry_run: DryRunOpt = False,
    warehouse: WarehouseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Supervised fine-tuning on an SFT snapshot (train_sft; eval on test_sft).

    Example: curate train sft --snapshot ultrachat --config configs/smollm2-135m/sft.yaml
    """
    _train("sft", snapshot, config, set_, output_dir, fresh, dry_run, warehouse, as_json)


@train_app.command("dpo")
def dpo(
    snapshot: SnapshotOpt,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    output_dir: OutputOpt = None,
    fresh: FreshOpt = False,
    dry_run: DryRunOpt = False,
    warehouse: WarehouseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """DPO on a preferences snapshot (train_prefs; eval on test_prefs).

    Example: curate train dpo --snapshot ultrafeedback --set model_name_or_path=runs/my-sft
    """
    _train("dpo", snapshot, config, set_, output_dir, fresh, dry_run, warehouse, as_json)


def runs_command(
    snapshot: Annotated[
        str | None,
        typer.Option("--snapshot", "-s", help="Only runs on this snapshot (id or id prefix)."),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Only runs with this status: running, completed, failed, interrupted."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.")] = 50,
    warehouse: WarehouseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Training runs recorded in the warehouse: which models were trained on which snapshot.

    Example: curate runs --snapshot s_1a2b
    """
    from warehouse.runs import list_runs
    from warehouse.snapshots import resolve

    wh = _warehouse(warehouse)
    snapshot_id = snapshot
    if snapshot:  # a tag or prefix resolves to the id, as for every snapshot argument
        with wh.read() as con:
            snapshot_id = resolve(con, snapshot)
    found = list_runs(wh, snapshot=snapshot_id, status=status, limit=limit)
    if as_json:
        output.print_json(found)
        return
    rows = [
        {
            "run_id": r["run_id"],
            "trainer": r["trainer"],
            "snapshot_id": r["snapshot_id"],
            "model": r["model"],
            "status": r["status"],
            "started_at": r["started_at"],
            "last_loss": (r["metrics"] or {}).get("last_loss"),
            "output_dir": r["output_dir"],
        }
        for r in found
    ]
    output.print_rows(rows, title=f"training runs in {wh.path}")
    if not rows:
        _log("no training runs recorded yet: `curate train sft --snapshot S` starts one")
