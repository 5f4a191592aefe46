"""Peak resident memory of a stretch of work, sampled from a background thread.

`ru_maxrss` only ever grows over a process's life, so per-step peaks need sampling.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import psutil


class PeakRss:
    """`with PeakRss() as m: ...` then `m.peak_mb` and `m.seconds`."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _read(self) -> None:
        self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._read()

    def __enter__(self) -> PeakRss:
        self._t0 = time.perf_counter()
        self._read()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._read()
        self.seconds = time.perf_counter() - self._t0
