"""Jobs: recipe runs, dry runs and training, one at a time, each in its own subprocess.

A job is `python -m curate -w WAREHOUSE --wait S <command> ... --json`, started in its own
process group (so cancel kills it and everything it started), stdout to `<job>.stdout`
(parsed into the job's `result` on success), stderr to `<job>.log` (what `log?tail=` shows).
One worker thread takes jobs from a queue in order, so two commits never fight for the
warehouse's write lock. Records live in `warehouse.jobs.JobStore` (the sidecar file).

Cancel sends SIGTERM to the group (training records itself `interrupted`; a recipe run dies
before its commit transaction ends, which rolls it back), then SIGKILL after a grace period.
On start, jobs a dead service left behind are marked `interrupted`, and a job subprocess that
outlived its service is killed (nobody would collect its result).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from dashboards.errors import ConflictError, not_found_if_missing
from dashboards.settings import ServiceSettings
from warehouse.errors import BadInputError
from warehouse.jobs import RESTART_REASON, Job, JobStore, new_job_id

STOP_REASON = "cut off by the service stopping"
CANCEL_GRACE_S = 10.0
_PROJECT_ROOT = Path(__file__).resolve().parents[1]


def parse_json_output(text: str) -> Any:
    """The command's `--json` document; tolerant of stray lines a library printed first."""
    text = text.strip()
    if not text:
        return None
    with contextlib.suppress(ValueError):
        return json.loads(text)
    decoder = json.JSONDecoder()
    found: Any = None
    for i, ch in enumerate(text):
        if ch in "{[" and (i == 0 or text[i - 1] == "\n"):
            with contextlib.suppress(ValueError):
                found, _ = decoder.raw_decode(text[i:])
    return found


def tail_lines(path: Path, lines: int, max_bytes: int = 1 << 20) -> tuple[str, bool]:
    """The last `lines` lines of a file (reading at most `max_bytes` from its end)."""
    if not path.exists():
        return "", False
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - max_bytes))
        data = fh.read().decode("utf-8", errors="replace")
    # progress bars write \r updates: keep the last state of each line
    got = [ln.rsplit("\r", 1)[-1] for ln in data.splitlines()]
    return "\n".join(got[-lines:]), len(got) > lines or size > max_bytes


def _error_from_log(path: Path) -> str:
    text, _ = tail_lines(path, 40)
    errors = [ln for ln in text.splitlines() if ln.startswith("error:")]
    if errors:
        return errors[-1][len("error:") :].strip()
    return "\n".join(text.splitlines()[-5:]) or "the job failed without a message"


def _is_our_job(pid: int, job: Job) -> psutil.Process | None:
    """The process, if `pid` still runs this job's command (pids get reused)."""
    try:
        proc = psutil.Process(pid)
        cmd = proc.cmdline()
    except (psutil.Error, OSError):
        return None
    return proc if job.argv and cmd[1:] == job.argv[1:] else None


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class JobRunner:
    """The queue, the worker thread, and the one running subprocess."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.store: JobStore | None = None
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._current: tuple[str, subprocess.Popen[bytes]] | None = None
        self._cancel: set[str] = set()

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> list[Job]:
        """Open the records, recover what a dead service left, start the worker; idempotent."""
        with self._lock:
            if self.store is not None:
                return []
            store = JobStore(self.settings.jobs_db)
            for job in store.unfinished():
                if job.pid:
                    proc = _is_our_job(job.pid, job)
                    if proc is not None:
                        _kill_group(job.pid, signal.SIGKILL)
            recovered = store.recover(RESTART_REASON)
            self.store = store
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="curate-jobs", daemon=True)
            self._thread.start()
        return recovered

    def stop(self, reason: str = STOP_REASON) -> None:
        """Stop the worker; a running job is killed and, like queued ones, marked interrupted."""
        with self._lock:
            store = self.store
            if store is None:
                return
            self._stop.set()
            current = self._current
        if current is not None:
            proc = current[1]
            _kill_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            _kill_group(proc.pid, signal.SIGKILL)
        if self._thread is not None:
            self._thread.join(timeout=15)
        for job in store.unfinished():
            store.finish_if_open(job.job_id, "interrupted", reason)
        with self._lock:
            store.close()
            self.store = None
            self._thread = None

    def abandon(self) -> None:
        """Tests only: forget everything as a killed service would (no records are finished)."""
        with self._lock:
            self._stop.set()
            store, self.store = self.store, None
        if self._thread is not None:
            self._thread.join(timeout=15)
        if store is not None:
            store.close()

    def _store(self) -> JobStore:
        if self.store is None:
            self.start()
        assert self.store is not None
        return self.store

    # -- requests -----------------------------------------------------------------------
    def submit(self, kind: str, args: dict[str, Any], command: list[str]) -> Job:
        """Queue `curate <command>`; returns the queued job."""
        store = self._store()
        job_id = new_job_id()
        logs = self.settings.job_logs
        logs.mkdir(parents=True, exist_ok=True)
        wh = str(self.settings.warehouse.resolve())
        argv = [
            sys.executable,
            "-m",
            "curate",
            "-w",
            wh,
            "--wait",
            f"{self.settings.job_wait_s:g}",
            *command,
        ]
        job = store.create(kind, args, argv, (logs / f"{job_id}.log").resolve(), job_id)
        self._queue.put(job_id)
        return job

    def get(self, job_id: str) -> Job:
        try:
            return self._store().get(job_id)
        except BadInputError as exc:
            raise not_found_if_missing(exc) from exc

    def list_jobs(
        self, status: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Job]:
        return self._store().list_jobs(status, kind, limit)

    def cancel(self, job_id: str) -> Job:
        """Queued: cancelled at once. Running: the process group gets SIGTERM, then SIGKILL."""
        job = self.get(job_id)
        if job.finished:
            raise ConflictError(f"job {job_id} already ended ({job.status})")
        store = self._store()
        with self._lock:
            self._cancel.add(job_id)  # the worker checks this before it starts a job
            current = self._current
        if current is not None and current[0] == job_id:
            _kill_group(current[1].pid, signal.SIGTERM)
            threading.Thread(target=self._reap, args=(current[1],), daemon=True).start()
        else:  # not started: the worker will skip it
            store.finish_if_open(job_id, "cancelled", "cancelled before it started")
        return store.get(job_id)

    @staticmethod
    def _reap(proc: subprocess.Popen[bytes]) -> None:
        try:
            proc.wait(CANCEL_GRACE_S)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)

    def log_tail(self, job_id: str, lines: int) -> tuple[Job, str, bool]:
        job = self.get(job_id)
        text, cut = tail_lines(Path(job.log_path), max(1, min(lines, 10_000)))
        return job, text, cut

    def wait(self, job_id: str, timeout_s: float) -> Job:
        """Poll until the job ends (tests and scripts)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job.finished or time.monotonic() > deadline:
                return job
            time.sleep(0.1)

    # -- the worker ---------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if self._stop.is_set():
                return
            try:
                self._run(job_id)
            except Exception as exc:  # a bug here must not stop the queue
                store = self.store
                if store is not None:
                    with contextlib.suppress(Exception):
                        store.finish_if_open(job_id, "failed", f"service error: {exc!r}")

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.settings.job_env}
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("HF_DATASETS_OFFLINE", "1")
        # the job must import this checkout's packages even when cwd is elsewhere
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        return env

    @contextlib.contextmanager
    def _files(self, job: Job) -> Iterator[tuple[Any, Any]]:
        log = Path(job.log_path)
        with open(log, "ab") as err, open(log.with_suffix(".stdout"), "wb") as out:
            yield out, err

    def _run(self, job_id: str) -> None:
        store = self.store
        if store is None:
            return
        job = store.get(job_id)
        if job.status != "queued":  # cancelled while it waited
            with self._lock:
                self._cancel.discard(job_id)
            return
        with self._files(job) as (out, err):
            err.write(f"$ {' '.join(job.argv)}\n".encode())
            err.flush()
            with self._lock:  # a cancel either lands before this (skip) or sees _current
                if job_id in self._cancel or self._stop.is_set():
                    self._cancel.discard(job_id)
                    return
                proc = subprocess.Popen(
                    job.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=self._env(),
                    start_new_session=True,  # its own process group: cancel kills the group
                )
                self._current = (job_id, proc)
            store.update(job_id, status="running", pid=proc.pid, started=True)
            try:
                rc = proc.wait()
            finally:
                with self._lock:
                    self._current = None
                    cancelled = job_id in self._cancel
                    self._cancel.discard(job_id)
        if self._stop.is_set() and not cancelled:
            return  # stop() marks it interrupted
        stdout = Path(job.log_path).with_suffix(".stdout").read_text(errors="replace")
        if cancelled:
            store.update(job_id, status="cancelled", exit_code=rc, error="cancelled", ended=True)
        elif rc == 0:
            store.update(
                job_id,
                status="succeeded",
                exit_code=0,
                result=parse_json_output(stdout),
                ended=True,
            )
        else:
            error = _error_from_log(Path(job.log_path))
            store.update(job_id, status="failed", exit_code=rc, error=error, ended=True)


def run_short(
    settings: ServiceSettings, command: list[str], timeout_s: float
) -> tuple[int, str, str]:
    """A quick `curate` command run to completion now (tagging): rc, stdout, stderr.

    Writes to the warehouse go through subprocesses even when short: this process holds the
    file read-only for its requests, and DuckDB will not open it read-write beside that.
    """
    argv = [
        sys.executable,
        "-m",
        "curate",
        "-w",
        str(settings.warehouse.resolve()),
        "--wait",
        f"{settings.read_wait_s:g}",
        *command,
    ]
    env = {**os.environ, "PYTHONPATH": str(_PROJECT_ROOT)}
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise ConflictError(f"`curate {command[0]}` did not finish in {timeout_s:g}s") from exc
    return done.returncode, done.stdout, done.stderr
