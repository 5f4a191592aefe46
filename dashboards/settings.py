"""What the service needs to know: which warehouse, who may change things, how much SQL."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from warehouse.store import default_warehouse_path

TOKEN_ENV = "CURATE_TOKEN"


class ServiceSettings(BaseModel):
    """`token`: required on mutating endpoints (and on reads when `protect_reads`).

    Paths the API may name are confined to roots: exports to `export_root`, recipe and
    training-config YAML files to `recipes_root` (built-in recipes and the shipped
    `configs/` are always allowed), so a token holder cannot point the service anywhere.
    """

    model_config = ConfigDict(frozen=True)

    warehouse: Path = Field(default_factory=default_warehouse_path)
    token: str | None = Field(default_factory=lambda: os.environ.get(TOKEN_ENV) or None)
    protect_reads: bool = False
    sql_time_limit_s: float = 10.0
    sql_max_rows: int = 1_000
    sql_max_bytes: int = 8 << 20  # response size cap; rows past it are cut (`truncated`)
    sql_workers: int = 2  # user SQL runs in these worker processes, one query each at a time
    page_size: int = 50
    read_time_limit_s: float = 30.0  # built-in heavy reads (diff); past it: 504
    read_wait_s: float = 5.0  # a read meeting a commit waits this long, then 503
    job_wait_s: float = 600.0  # `--wait` given to job subprocesses (commits wait for readers)
    jobs_dir: Path | None = None  # logs of jobs; default: <warehouse>.jobs/
    export_root: Path | None = None  # default: <warehouse>.exports/
    recipes_root: Path | None = None  # YAML recipes/configs the API may name; None: built-ins
    job_env: dict[str, str] = Field(default_factory=dict)  # extra env for job subprocesses

    @property
    def job_logs(self) -> Path:
        return self.jobs_dir or self.warehouse.with_name(self.warehouse.name + ".jobs")

    @property
    def exports(self) -> Path:
        return self.export_root or self.warehouse.with_name(self.warehouse.name + ".exports")

    @property
    def jobs_db(self) -> Path:
        return self.warehouse.with_name(self.warehouse.name + ".jobs.duckdb")
