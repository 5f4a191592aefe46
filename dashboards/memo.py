"""Answers computed once per key, for reads whose inputs never change.

Snapshots are immutable, so a diff between two snapshot ids is the same answer forever. A
diff of two 500k-row snapshots costs tens of seconds; without this, 20 clients opening the
same diff would compute it 20 times at once and all time out. Concurrent askers of one key
wait for the first; a failure (a time limit) is remembered briefly so the waiters do not
each try again in turn.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from warehouse.errors import CurateError

FAILURE_TTL_S = 30.0


class OnceCache:
    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._failed: dict[Hashable, tuple[float, CurateError]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def _lookup(self, key: Hashable) -> tuple[bool, Any]:
        if key in self._data:
            self._data.move_to_end(key)
            return True, self._data[key]
        failed = self._failed.get(key)
        if failed and time.monotonic() - failed[0] < FAILURE_TTL_S:
            raise failed[1]
        return False, None

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit, value = self._lookup(key)
            if hit:
                return value
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit, value = self._lookup(key)
                if hit:
                    return value
            try:
                value = compute()
            except CurateError as exc:
                with self._lock:
                    self._failed[key] = (time.monotonic(), exc)
                raise
            with self._lock:
                self._data[key] = value
                self._failed.pop(key, None)
                while len(self._data) > self.size:
                    self._data.popitem(last=False)
                self._locks.pop(key, None)
        return value
