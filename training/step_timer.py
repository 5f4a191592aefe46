"""A trainer callback that times optimizer steps, for the run record and the benchmark.

The Trainer reports only whole-run throughput, which mixes in start-up and the first step's
one-off costs; the median step time is the figure that predicts a longer run.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Records the wall time of every optimizer step."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._began: float | None = None

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._began = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._began is not None:
            self.durations.append(time.perf_counter() - self._began)
            self._began = None

    def summary(self) -> dict[str, float]:
        """Median step time (first step excluded when there are others) and the count."""
        steady = self.durations[1:] if len(self.durations) > 1 else self.durations
        if not steady:
            return {}
        return {
            "step_time_s_median": statistics.median(steady),
            "step_time_s_first": self.durations[0],
            "steps_timed": float(len(self.durations)),
        }
