"""DuckLake vs plain DuckDB tables as the store for immutable snapshots.

Measures, on synthetic rows shaped like `snapshot_rows` (SFT: ~4 messages of ~1 KB each):
commit time of one snapshot, reading one split back to Arrow, size on disk, the anti-join
diff between two snapshots, DuckLake time travel / snapshot listing / table_changes, whether
a DuckLake catalog can be read under the SQL sandbox's lockdown, kill -9 during a commit, and
the single-writer rule. Writes `bench/results/ducklake_eval.md`; data goes to
/tmp/ducklake_eval (removed and rebuilt on each run).

    .venv/bin/python -m bench.ducklake_eval [--rows 200000] [--crash-trials 4] [--repeats 3]

About 9 minutes on 2 shared cores at the defaults; needs ~4 GiB free in /tmp.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import RESULTS_DIR, log, machine_line, offline_env
from warehouse.schema import SNAPSHOT_ROWS, SNAPSHOTS

WORK = Path("/tmp/ducklake_eval")
RESULT = RESULTS_DIR / "ducklake_eval.md"
WRITE_CONFIG = {"memory_limit": "512MB", "preserve_insertion_order": True, "threads": 2}
# Reading a 180k-row split (~900 MiB) back with ORDER BY needs more than the writer's 512MB:
# a read-only connection at 512MB fails with "failed to pin block".
READ_CONFIG = {"memory_limit": "4GB", "threads": 2}
SANDBOX_CONFIG = {
    "threads": 2,
    "memory_limit": "2GB",
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
}
MIB = 1 << 20


def ducklake_extension() -> str:
    import duckdb_extension_ducklake

    root = Path(duckdb_extension_ducklake.__file__).parent
    found = sorted(root.rglob(f"v{duckdb.__version__}/ducklake.duckdb_extension"))
    if not found:
        raise SystemExit(f"no ducklake extension for duckdb {duckdb.__version__} under {root}")
    return str(found[0].resolve())


# -- synthetic rows -----------------------------------------------------------------------


Vocab = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _vocab(rng: np.random.Generator, n: int = 8192) -> Vocab:
    """Random 'words' with a Zipf-like frequency: bytes, starts, lengths (with space), p."""
    letters = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", dtype=np.uint8)
    lengths = np.clip(rng.geometric(0.22, n), 1, 12)
    words = [bytes(rng.choice(letters, size=k)) + b" " for k in lengths]
    buf = np.frombuffer(b"".join(words), dtype=np.uint8)
    lens = np.array([len(w) for w in words], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    p = 1.0 / np.arange(1, n + 1)
    return buf, starts, lens, p / p.sum()


def _corpus(rng: np.random.Generator, vocab: Vocab, size: int = 64 * MIB) -> bytes:
    """`size` bytes of word salad drawn from the vocabulary."""
    buf, starts, lens, p = vocab
    ids = rng.choice(len(lens), size=size // 4, p=p)
    wl = lens[ids]
    out_start = np.cumsum(wl) - wl
    src = np.repeat(starts[ids] - out_start, wl) + np.arange(int(wl.sum()), dtype=np.int64)
    return buf[src][:size].tobytes()


def _texts(rng: np.random.Generator, corpus: bytes, sizes: np.ndarray) -> pa.StringArray:
    """One string per entry of `sizes`: a slice of the corpus at a random offset, so rows
    are distinct and a compressor sees no more repetition than natural text has."""
    starts = rng.integers(0, len(corpus) - int(sizes.max()), size=len(sizes))
    view = memoryview(corpus)
    data = b"".join(view[a : a + b] for a, b in zip(starts.tolist(), sizes.tolist(), strict=True))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    return pa.StringArray.from_buffers(len(sizes), pa.py_buffer(offsets), pa.py_buffer(data))


def make_pool(n: int, seed: int = 0, chunk: int = 20_000) -> pa.Table:
    """n distinct SFT rows (row_id, prompt, prompt_id, messages); split by row index."""
    rng = np.random.default_rng(seed)
    corpus = _corpus(rng, _vocab(rng))
    msg_type = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    parts = []
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        turns = rng.choice([2, 4, 6], size=m, p=[0.25, 0.5, 0.25])
        n_msgs = int(turns.sum())
        content = _texts(rng, corpus, rng.integers(200, 1800, size=n_msgs))
        list_offsets = np.concatenate([[0], np.cumsum(turns)]).astype(np.int32)
        turn_in_row = np.arange(n_msgs) - np.repeat(list_offsets[:-1], turns)
        roles = pa.array(np.where(turn_in_row % 2 == 0, "user", "assistant"))
        structs = pa.StructArray.from_arrays([roles, content], names=["role", "content"])
        messages = pa.ListArray.from_arrays(pa.array(list_offsets), structs, type=msg_type)
        prompt = content.take(pa.array(list_offsets[:-1]))
        prompt_id = [hashlib.sha256(s.as_buffer()).hexdigest() for s in prompt]
        idx = np.arange(lo, lo + m)
        row_id = [f"{x:016x}" for x in rng.integers(0, 2**63, size=m)]
        parts.append(
            pa.table(
                {
                    "idx": idx,
                    "split": np.where(idx % 10 == 0, "test_sft", "train_sft"),
                    "row_id": row_id,
                    "prompt": prompt,
                    "prompt_id": prompt_id,
                    "messages": messages,
                }
            )
        )
    return pa.concat_tables(parts)


def snapshot_table(pool: pa.Table, lo: int, hi: int, snapshot_id: str) -> pa.Table:
    """Rows lo..hi of the pool as one snapshot, laid out exactly like `snapshot_rows`."""
    con = duckdb.connect(config={"threads": 2})
    con.register("pool", pool.slice(lo, hi - lo))
    msg = "NULL::STRUCT(role VARCHAR, content VARCHAR)[]"
    return con.execute(
        f"""
        SELECT $1 AS snapshot_id, split,
               (row_number() OVER (PARTITION BY split ORDER BY idx) - 1)::BIGINT AS ordinal,
               row_id, prompt, prompt_id, messages, {msg} AS chosen, {msg} AS rejected,
               NULL::DOUBLE AS score_chosen, NULL::DOUBLE AS score_rejected,
               NULL::VARCHAR AS chosen_model, NULL::VARCHAR AS rejected_model,
               NULL::VARCHAR AS source
        FROM pool ORDER BY split, ordinal
        """,
        [snapshot_id],
    ).to_arrow_table()


# -- the two stores -----------------------------------------------------------------------


class Store:
    """One way of storing snapshots: `open` returns a connection whose default catalog
    holds `snapshots` and `snapshot_rows`."""

    name = ""

    def __init__(self, root: Path, options: dict[str, str] | None = None) -> None:
        self.root = root
        self.options = options or {}

    def open(self, read_only: bool = False, config: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def files(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.is_file()]

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def create(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        con = self.open()
        for key, value in self.options.items():
            con.execute(f"CALL lake.set_option('{key}', '{value}')")
        con.execute(SNAPSHOTS.ddl())
        con.execute(SNAPSHOT_ROWS.ddl())
        con.close()


class PlainStore(Store):
    name = "plain DuckDB"

    @property
    def db(self) -> Path:
        return self.root / "warehouse.duckdb"

    def open(self, read_only: bool = False, config: dict[str, Any] | None = None) -> Any:
        cfg = dict(config if config is not None else WRITE_CONFIG)
        return duckdb.connect(str(self.db), read_only=read_only, config=cfg)


class LakeStore(Store):
    name = "DuckLake"
    # `row_id` is reserved by DuckLake while data inlining is on, and snapshot_rows has one.
    # With the default Parquet row group (122,880 rows, ~600 MiB of these rows) the insert
    # runs out of memory at the writer's 512MB; 16,384-row groups fit.
    OPTIONS: ClassVar[dict[str, str]] = {"parquet_row_group_size": "16384"}
    ATTACH = "ATTACH 'ducklake:{cat}' AS lake (DATA_PATH '{data}', DATA_INLINING_ROW_LIMIT 0)"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.ducklake"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def attach_sql(self, read_only: bool = False) -> str:
        sql = self.ATTACH.format(cat=self.catalog, data=f"{self.data}/")
        return sql[:-1] + ", READ_ONLY)" if read_only else sql

    def open(self, read_only: bool = False, config: dict[str, Any] | None = None) -> Any:
        cfg = dict(config if config is not None else WRITE_CONFIG)
        con = duckdb.connect(config=cfg)
        con.execute(f"LOAD '{ducklake_extension()}'")
        con.execute(self.attach_sql(read_only))
        con.execute("USE lake")
        return con

    def parquet_files(self) -> list[Path]:
        return sorted(self.data.rglob("*.parquet")) if self.data.exists() else []

    def referenced(self, con: Any) -> set[str]:
        files: set[str] = set()
        for table in ("snapshots", "snapshot_rows"):
            rows = con.execute(
                "SELECT data_file FROM ducklake_list_files('lake', $1)", [table]
            ).fetchall()
            files |= {str(Path(r[0]).resolve()) for r in rows}
        return files


def commit_snapshot(con: Any, table: pa.Table, snapshot_id: str) -> None:
    """The commit point: catalog row + rows in one transaction."""
    con.register("new_rows", table)
    con.execute("BEGIN")
    con.execute(
        "INSERT INTO snapshots (snapshot_id, kind, n_rows, created_at) "
        "VALUES ($1, 'sft', $2, now()::TIMESTAMP)",
        [snapshot_id, table.num_rows],
    )
    con.execute("INSERT INTO snapshot_rows SELECT * FROM new_rows")
    con.execute("COMMIT")
    con.unregister("new_rows")


READ_SPLIT = (
    "SELECT * EXCLUDE (snapshot_id) FROM snapshot_rows "
    "WHERE snapshot_id = $1 AND split = $2 ORDER BY ordinal"
)
DIFF = """
    SELECT (SELECT count(*) FROM (SELECT split, row_id FROM snapshot_rows WHERE snapshot_id = $1)
            ANTI JOIN (SELECT split, row_id FROM snapshot_rows WHERE snapshot_id = $2)
            USING (split, row_id)) AS removed,
           (SELECT count(*) FROM (SELECT split, row_id FROM snapshot_rows WHERE snapshot_id = $2)
            ANTI JOIN (SELECT split, row_id FROM snapshot_rows WHERE snapshot_id = $1)
            USING (split, row_id)) AS added
"""


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_of(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    samples, out = [], None
    for _ in range(repeats):
        s, out = timed(fn)
        samples.append(s)
    return statistics.median(samples), out


def err_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


# -- measurements -------------------------------------------------------------------------


def measure_store(store: Store, snaps: dict[str, pa.Table]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    store.create()
    for i, (sid, table) in enumerate(snaps.items()):
        con = store.open()
        secs, _ = timed(lambda con=con, table=table, sid=sid: commit_snapshot(con, table, sid))
        close_s, _ = timed(con.close)
        res[f"commit{i}"] = secs
        res[f"close{i}"] = close_s
        log(f"{store.name}: commit {sid} {secs:.2f} s, close {close_s:.2f} s")
    res["size"] = store.size()
    sid = list(snaps)[-1]
    for split in ("test_sft", "train_sft"):
        samples = []
        for _ in range(3):
            con = store.open(read_only=True, config=READ_CONFIG)
            s, cur = timed(lambda con=con, split=split: con.execute(READ_SPLIT, [sid, split]))
            s2, tbl = timed(cur.to_arrow_table)
            samples.append(s + s2)
            con.close()
        res[f"read_{split}"] = statistics.median(samples)
        res[f"rows_{split}"] = tbl.num_rows
    res["open"], con = median_of(lambda: store.open(read_only=True, config=READ_CONFIG))
    a, b = list(snaps)
    res["diff"], diff = median_of(lambda: con.execute(DIFF, [a, b]).fetchone())
    res["diff_counts"] = diff
    con.close()
    return res


def commit_timing(stores: list[Store], table: pa.Table, repeats: int) -> dict[str, list[float]]:
    """Commit one snapshot into a fresh, empty store, alternating stores, `repeats` times."""
    out: dict[str, list[float]] = {s.name: [] for s in stores}
    for _ in range(repeats):
        for store in stores:
            fresh = type(store)(WORK / "timing", store.options)
            fresh.create()
            con = fresh.open()
            secs, _ = timed(lambda con=con: commit_snapshot(con, table, "s_A"))
            con.close()
            shutil.rmtree(fresh.root)
            out[store.name].append(secs)
            log(f"{store.name}: timed commit {secs:.2f} s")
    return out


def fmt_runs(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} [{min(xs):.2f}, {max(xs):.2f}]"


def lake_features(store: LakeStore, snaps: dict[str, pa.Table]) -> list[tuple[str, str]]:
    """Time travel, snapshot list, table_changes; plus the 'one living table' mapping."""
    notes: list[tuple[str, str]] = []
    con = store.open(config=READ_CONFIG)
    listing = con.execute(
        "SELECT snapshot_id, changes::VARCHAR FROM ducklake_snapshots('lake') ORDER BY 1"
    ).fetchall()
    notes.append(("`ducklake_snapshots('lake')`", "; ".join(f"v{v}: {c}" for v, c in listing)))
    versions = [v for v, c in listing if "tables_inserted_into" in c]
    va, vb = versions[-2], versions[-1]
    s, n = timed(
        lambda: con.execute(f"SELECT count(*) FROM snapshot_rows AT (VERSION => {va})").fetchone()
    )
    notes.append(
        (f"`snapshot_rows AT (VERSION => {va})`", f"{n[0]:,} rows (only snapshot A), {s:.2f} s")
    )
    s, n = timed(
        lambda: con.execute(
            f"SELECT change_type, count(*) FROM ducklake_table_changes("
            f"'lake', 'main', 'snapshot_rows', {vb}, {vb}) GROUP BY ALL"
        ).fetchall()
    )
    notes.append(
        (
            f"`ducklake_table_changes(..., {vb}, {vb})` (append-only layout)",
            f"{n} in {s:.2f} s: every row of B is an insert, not a diff against A",
        )
    )
    desc = con.execute(
        f"SELECT * FROM ducklake_table_changes('lake', 'main', 'snapshot_rows', {vb}, {vb}) LIMIT 0"
    ).description
    cols = [d[0] for d in desc]
    notes.append(("table_changes columns", ", ".join(cols[:5]) + ", ..."))

    # The other mapping: one living table per recipe, each snapshot applied as a delta.
    b = snaps["s_B"]
    con.execute(
        "CREATE TABLE living AS SELECT * EXCLUDE (snapshot_id, ordinal) FROM snapshot_rows "
        "WHERE snapshot_id = $1",
        ["s_A"],
    )
    v1 = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchone()[0]
    con.register("b_rows", b)

    def apply_delta() -> None:
        con.execute("BEGIN")
        con.execute(
            "DELETE FROM living WHERE row_id NOT IN (SELECT row_id FROM b_rows)",
        )
        con.execute(
            "INSERT INTO living SELECT * EXCLUDE (snapshot_id, ordinal) FROM b_rows "
            "WHERE row_id NOT IN (SELECT row_id FROM living)"
        )
        con.execute("COMMIT")

    s, _ = timed(apply_delta)
    v2 = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchone()[0]
    notes.append(("delta commit of B onto a living table (DELETE + INSERT)", f"{s:.2f} s"))
    s, n = timed(
        lambda: con.execute(
            f"SELECT change_type, count(*) FROM ducklake_table_changes("
            f"'lake', 'main', 'living', {v1 + 1}, {v2}) GROUP BY ALL ORDER BY 1"
        ).fetchall()
    )
    notes.append((f"`table_changes(living, {v1 + 1}, {v2})`", f"{n} in {s:.2f} s"))
    con.execute("DROP TABLE living")
    con.close()
    return notes


def sandbox_probe(
    store: Store, snapshot_id: str, allowed: str | None = None, version: int = 3
) -> list[str]:
    """Open the store read-only the way warehouse.sandbox does, lock it down, try queries."""
    out = []
    try:
        if isinstance(store, LakeStore):
            con = duckdb.connect(config=dict(SANDBOX_CONFIG))
            con.execute(f"LOAD '{ducklake_extension()}'")
            con.execute(store.attach_sql(read_only=True))
            con.execute("USE lake")
        else:
            con = store.open(read_only=True, config=dict(SANDBOX_CONFIG))
        if allowed:
            con.execute(f"SET allowed_directories = ['{allowed}']")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        return [f"open/lockdown: {err_line(exc)}"]
    probes = [
        "SELECT count(*) FROM snapshot_rows",
        "SELECT count(*) FROM snapshot_rows WHERE split = 'test_sft'",
        f"SELECT row_id, left(prompt, 12) FROM snapshot_rows WHERE snapshot_id = '{snapshot_id}' "
        "LIMIT 1",
    ]
    if isinstance(store, LakeStore):
        probes += [
            "SELECT count(*) FROM ducklake_snapshots('lake')",
            f"SELECT count(*) FROM snapshot_rows AT (VERSION => {version})",
        ]
    if allowed:
        probes.append(f"COPY (SELECT 42 AS x) TO '{allowed}/planted.parquet'")
    for sql in probes:
        try:
            r = con.execute(sql).fetchall()
            out.append(f"`{sql}` -> OK {r[:1]}")
        except duckdb.Error as exc:
            out.append(f"`{sql}` -> **{err_line(exc)}**")
    con.close()
    if allowed and Path(allowed, "planted.parquet").exists():
        out.append(f"`{allowed}/planted.parquet` now exists: the data folder is writable")
        Path(allowed, "planted.parquet").unlink()
    return out


def writer_probe(store: Store) -> str:
    """Hold the store read-write in a child; try to open it again here."""
    holder = subprocess.Popen(
        [sys.executable, "-m", "bench.ducklake_eval", "--child-hold", store.name],
        env=offline_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()  # "held"
        results = []
        for ro in (False, True):
            try:
                store.open(read_only=ro).close()
                results.append(f"{'read-only' if ro else 'read-write'}: opened")
            except duckdb.Error as exc:
                results.append(f"{'read-only' if ro else 'read-write'}: {err_line(exc)}")
        return "; ".join(results)
    finally:
        holder.kill()
        holder.wait()


# -- kill -9 during commit ----------------------------------------------------------------


def store_by_name(name: str) -> Store:
    return {
        PlainStore.name: PlainStore(WORK / "plain"),
        LakeStore.name: LakeStore(WORK / "lake", LakeStore.OPTIONS),
    }[name]


def child_commit(name: str, rows: str, snapshot_id: str, marker: str) -> None:
    store = store_by_name(name)
    table = pq.read_table(rows)
    table = table.set_column(0, "snapshot_id", pa.array([snapshot_id] * table.num_rows))
    con = store.open()
    Path(marker, "ready").touch()
    commit_snapshot(con, table, snapshot_id)
    Path(marker, "committed").touch()
    con.close()
    Path(marker, "closed").touch()


def child_hold(name: str) -> None:
    con = store_by_name(name).open()
    print("held", flush=True)
    time.sleep(60)
    con.close()


def crash_trials(
    store: Store, rows_file: Path, n_rows: int, delays: list[float]
) -> list[dict[str, Any]]:
    """Kill a child `delay` s after it starts committing; reopen and classify the state."""
    pristine = WORK / f"pristine-{store.root.name}"
    shutil.rmtree(pristine, ignore_errors=True)
    shutil.copytree(store.root, pristine)
    base = store.size()
    before = (
        {str(p.resolve()) for p in store.parquet_files()} if isinstance(store, LakeStore) else set()
    )
    trials = []
    for i, delay in enumerate(delays):
        shutil.rmtree(store.root)
        shutil.copytree(pristine, store.root)
        marker = WORK / "marker"
        shutil.rmtree(marker, ignore_errors=True)
        marker.mkdir()
        sid = f"s_crash_{i}"
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.ducklake_eval",
                "--child-commit",
                store.name,
                str(rows_file),
                sid,
                str(marker),
            ],
            env=offline_env(),
        )
        while not (marker / "ready").exists():
            if child.poll() is not None:
                raise SystemExit(f"crash child exited early with {child.returncode}")
            time.sleep(0.01)
        t0 = time.perf_counter()
        if delay < 0:  # kill as soon as COMMIT has returned
            while not (marker / "committed").exists() and child.poll() is None:
                time.sleep(0.001)
        else:
            time.sleep(delay)
        state = "after COMMIT" if (marker / "committed").exists() else "before COMMIT returned"
        os.kill(child.pid, signal.SIGKILL)
        delay = time.perf_counter() - t0
        child.wait()
        t: dict[str, Any] = {"delay": delay, "killed": state}
        t["size_after_kill"] = store.size() - base
        try:
            con = store.open()
            cat = con.execute("SELECT count(*) FROM snapshots WHERE snapshot_id = $1", [sid])
            n_cat = cat.fetchone()[0]
            n = con.execute(
                "SELECT count(*) FROM snapshot_rows WHERE snapshot_id = $1", [sid]
            ).fetchone()[0]
            n_old = con.execute(
                "SELECT count(*) FROM snapshot_rows WHERE snapshot_id <> $1", [sid]
            ).fetchone()[0]
            if n_cat == 0 and n == 0:
                t["state"] = "old"
            elif n_cat == 1 and n == n_rows:
                t["state"] = "new"
            else:
                t["state"] = f"PARTIAL (catalog {n_cat}, rows {n})"
            t["old_rows"] = n_old
            if isinstance(store, PlainStore):
                free, bs = con.execute(
                    "SELECT free_blocks, block_size FROM pragma_database_size()"
                ).fetchone()
                t["free_mib"] = free * bs / MIB
            if isinstance(store, LakeStore):
                new_files = {str(p.resolve()) for p in store.parquet_files()} - before
                orphans = new_files - store.referenced(con)
                t["orphans"] = len(orphans)
                t["orphan_mib"] = sum(Path(p).stat().st_size for p in orphans) / MIB
                try:
                    found = con.execute(
                        "CALL ducklake_delete_orphaned_files("
                        "'lake', dry_run => true, cleanup_all => true)"
                    ).fetchall()
                    t["lake_sees"] = len({str(Path(r[0]).resolve()) for r in found} & orphans)
                except duckdb.Error as exc:
                    t["lake_sees"] = err_line(exc)
            con.close()
        except duckdb.Error as exc:
            t["state"] = f"REOPEN FAILED: {err_line(exc)}"
        t["size_after_reopen"] = store.size() - base
        log(f"{store.name} kill at {delay:.2f} s ({state}): {t}")
        trials.append(t)
    shutil.rmtree(store.root)
    shutil.copytree(pristine, store.root)
    shutil.rmtree(pristine)
    return trials


# -- report -------------------------------------------------------------------------------


def table_md(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows per snapshot")
    ap.add_argument("--crash-trials", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="timed commits into empty stores")
    ap.add_argument("--child-commit", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--child-hold", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_commit:
        child_commit(*args.child_commit)
        return
    if args.child_hold:
        child_hold(args.child_hold)
        return

    machine = machine_line()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    n, delta = args.rows, args.rows // 20
    s, pool = timed(lambda: make_pool(n + delta))
    log(f"generated {pool.num_rows:,} pool rows ({pool.nbytes / MIB:,.0f} MiB Arrow) in {s:.1f} s")
    snaps = {
        "s_A": snapshot_table(pool, 0, n, "s_A"),
        "s_B": snapshot_table(pool, delta, n + delta, "s_B"),
    }
    arrow_mib = snaps["s_A"].nbytes / MIB
    msgs = snaps["s_A"].column("messages").combine_chunks()
    text_mib = pc.sum(pc.binary_length(msgs.flatten().field("content"))).as_py() / MIB
    crash_rows = WORK / "crash_rows.parquet"
    pq.write_table(snapshot_table(pool, delta, n + delta, "s_crash"), crash_rows)
    del pool

    default_lake = LakeStore(WORK / "lake-default-options")
    default_lake.create()
    con = default_lake.open()
    try:
        s, _ = timed(lambda: commit_snapshot(con, snaps["s_A"], "s_A"))
        default_options = f"commit of A with default Parquet options: OK in {s:.2f} s"
    except duckdb.Error as exc:
        default_options = f"commit of A with default Parquet options: **{err_line(exc)}**"
    con.close()
    shutil.rmtree(default_lake.root)
    log(default_options)
    plain, lake = PlainStore(WORK / "plain"), LakeStore(WORK / "lake", LakeStore.OPTIONS)
    timing = commit_timing([plain, lake], snaps["s_A"], args.repeats)
    res = {s.name: measure_store(s, snaps) for s in (plain, lake)}
    con = lake.open(read_only=True)
    compression = con.execute(
        f"SELECT DISTINCT compression FROM parquet_metadata('{lake.parquet_files()[0]}')"
    ).fetchall()
    lake_files = len(lake.parquet_files())
    con.close()
    lake_notes = lake_features(lake, snaps)

    sandbox = {
        plain.name: sandbox_probe(plain, "s_B"),
        lake.name: sandbox_probe(lake, "s_B"),
        f"{lake.name} + allowed_directories=[DATA_PATH]": sandbox_probe(
            lake, "s_B", allowed=str(lake.data)
        ),
    }
    writers = {s.name: writer_probe(s) for s in (plain, lake)}

    fractions = [0.1 + 0.8 * i / max(1, args.crash_trials - 1) for i in range(args.crash_trials)]
    crashes = {}
    for s in (plain, lake):
        c, cl = res[s.name]["commit1"], res[s.name]["close1"]
        delays = [f * c for f in fractions] + [-1.0, c + 0.5 * cl]
        crashes[s.name] = crash_trials(s, crash_rows, n, delays)

    # -- write the report
    p, lk = res[plain.name], res[lake.name]
    main_rows = [
        [
            f"commit one snapshot into an empty store, {args.repeats} runs (s): median [min, max]",
            fmt_runs(timing[plain.name]),
            fmt_runs(timing[lake.name]),
        ],
        ["commit snapshot A (s)", f"{p['commit0']:.2f}", f"{lk['commit0']:.2f}"],
        ["commit snapshot B (s)", f"{p['commit1']:.2f}", f"{lk['commit1']:.2f}"],
        [
            "close after commit (s, checkpoint)",
            f"{p['close0']:.2f} / {p['close1']:.2f}",
            f"{lk['close0']:.2f} / {lk['close1']:.2f}",
        ],
        [
            "commit + close, B (s)",
            f"{p['commit1'] + p['close1']:.2f}",
            f"{lk['commit1'] + lk['close1']:.2f}",
        ],
        ["open read-only (s)", f"{p['open']:.3f}", f"{lk['open']:.3f}"],
    ]
    for split in ("test_sft", "train_sft"):
        main_rows.append(
            [
                f"read {split} of B to Arrow ({p['rows_' + split]:,} rows, s)",
                f"{p['read_' + split]:.2f}",
                f"{lk['read_' + split]:.2f}",
            ]
        )
    main_rows += [
        [
            "diff A vs B, anti-join on (split, row_id) (s)",
            f"{p['diff']:.2f} {p['diff_counts']}",
            f"{lk['diff']:.2f} {lk['diff_counts']}",
        ],
        [
            "size on disk, both snapshots (MiB)",
            f"{p['size'] / MIB:,.0f}",
            f"{lk['size'] / MIB:,.0f} ({lake_files} Parquet, {compression[0][0]})",
        ],
    ]
    out = [
        "# DuckLake vs plain DuckDB for snapshot storage",
        "",
        f"Two snapshots of {n:,} SFT rows each, shaped like `snapshot_rows` (B drops {delta:,} "
        f"rows of A and adds {delta:,}); ~4 messages per row of 200-1800 bytes each: "
        f"{text_mib:,.0f} MiB of text, {arrow_mib:,.0f} MiB as Arrow per snapshot. "
        "Commit = catalog row + all rows in one transaction. Reads: median of 3, fresh "
        "read-only connection each (OS cache warm). DuckLake: DuckDB-file catalog, local "
        "DATA_PATH, `DATA_INLINING_ROW_LIMIT 0`. Writer config "
        f"`{WRITE_CONFIG}`, reader config `{READ_CONFIG}` (also used for the DuckLake "
        "feature checks). Generated by `python -m bench.ducklake_eval`.",
        "",
        machine,
        f"1-min load average at the end: {os.getloadavg()[0]:.2f}.",
        "",
        table_md(["measure", plain.name, lake.name], main_rows),
        "",
        f"DuckLake at the writer's memory limit: {default_options}. Measured above with "
        f"`set_option` {LakeStore.OPTIONS}.",
        "",
        "## DuckLake versioning features (offline)",
        "",
        table_md(["what", "result"], [list(r) for r in lake_notes]),
        "",
        "## Read-only + `enable_external_access=false` + `lock_configuration=true` (sandbox)",
        "",
    ]
    for name, lines in sandbox.items():
        out += [f"**{name}**", ""] + [f"- {x}" for x in lines] + [""]
    out += ["## A second open while a writer holds the store", ""]
    out += [f"- **{k}**: {v}" for k, v in writers.items()] + [""]
    out += [
        f"## kill -9 during the commit of a {n:,}-row snapshot",
        "",
        "A child process loads the rows, opens the store with snapshots A and B in it, then "
        "commits a third snapshot and is sent SIGKILL after the delay shown: fractions of the "
        "measured commit of B, then as soon as the child saw COMMIT return, and last, "
        "during the close (checkpoint) that follows it. The "
        "parent then reopens the store read-write. old = no catalog row and no rows of the "
        "new id; new = catalog row and all rows; anything else is PARTIAL. Orphans: Parquet "
        "files that appeared under DATA_PATH and no table references (and how many of them "
        "`ducklake_delete_orphaned_files(dry_run => true, cleanup_all => true)` lists).",
        "",
    ]
    crash_rows_md = []
    for name, trials in crashes.items():
        for t in trials:
            crash_rows_md.append(
                [
                    name,
                    f"{t['delay']:.2f}",
                    t["killed"],
                    t["state"],
                    f"{t.get('old_rows', 0):,}",
                    f"{t['size_after_kill'] / MIB:+,.0f}",
                    f"{t['size_after_reopen'] / MIB:+,.0f}"
                    + (f" ({t['free_mib']:,.0f} MiB free blocks)" if "free_mib" in t else ""),
                    f"{t['orphans']} ({t['orphan_mib']:,.0f} MiB; dry run lists {t['lake_sees']})"
                    if "orphans" in t
                    else "-",
                ]
            )
    out.append(
        table_md(
            [
                "store",
                "kill at (s)",
                "killed",
                "state on reopen",
                "other rows intact",
                "MiB left after kill",
                "MiB after reopen",
                "orphan Parquet",
            ],
            crash_rows_md,
        )
    )
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text("\n".join(out) + "\n")
    log(f"wrote {RESULT}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
