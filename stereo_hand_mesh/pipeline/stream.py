"""Serving a stream of stereo pairs, free of ROS: the newest-only worker, the statistics a
node reports, and a log throttle.

:class:`NewestOnlyWorker` keeps one slot: a new item replaces the one still waiting (counted
as dropped by the caller), so the worker always processes the newest pair and the latency
stays bounded under load.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["LogThrottle", "NewestOnlyWorker", "PairStatistics"]

T = TypeVar("T")


class LogThrottle:
    """At most one log line per key every ``period_s``; counts what it held back."""

    def __init__(self, period_s: float) -> None:
        self._period = period_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, key: str) -> int | None:
        """None to stay quiet, else the number of suppressed occurrences since the last."""
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self._period:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


class PairStatistics:
    """Counters and the recent latencies of a stream of pairs (for diagnostics).

    Attributes:
        lock: guards every counter; take it to read or change several together.
        sets: synchronized sets received.
        processed: pairs processed.
        meshes: pairs that gave a mesh.
        without_mesh: pairs processed without a mesh.
        mailbox_dropped: sets replaced before the worker took them.
        input_errors: pairs refused for bad input or an error.
        last_result: what the last pair gave, in words.
        last_error: the last input error's message.
        window: (monotonic time s, processing ms, age ms, found) of the recent pairs.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sets = 0
        self.processed = 0
        self.meshes = 0
        self.without_mesh = 0
        self.mailbox_dropped = 0
        self.input_errors = 0
        self.last_result = "waiting for the first stereo pair"
        self.last_error = ""
        self.window: deque[tuple[float, float, float, bool]] = deque(maxlen=4096)

    def record(self, processing_ms: float, age_ms: float, found: bool) -> None:
        """Count one processed pair."""
        with self.lock:
            self.processed += 1
            self.meshes += int(found)
            self.without_mesh += int(not found)
            self.window.append((time.monotonic(), processing_ms, age_ms, found))

    def recent(self, period_s: float) -> list[tuple[float, float, float, bool]]:
        """The window's entries of the last ``period_s`` seconds."""
        since = time.monotonic() - period_s
        with self.lock:
            return [w for w in self.window if w[0] >= since]


class NewestOnlyWorker(Generic[T]):
    """A thread that processes the newest item put in its one-slot mailbox.

    Args:
        handle: called with each item the worker takes, in the worker thread.
        on_error: called with the item and the exception when ``handle`` raises (the
            worker survives anything an item brings).
        name: the thread's name.
    """

    def __init__(
        self,
        handle: Callable[[T], None],
        on_error: Callable[[T, Exception], None],
        name: str = "newest_only_worker",
    ) -> None:
        self._handle = handle
        self._on_error = on_error
        self._cond = threading.Condition()
        self._mailbox: T | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> bool:
        """Leave ``item`` for the worker; True when it replaced one the worker had not taken."""
        with self._cond:
            replaced = self._mailbox is not None
            self._mailbox = item
            self._cond.notify()
        return replaced

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (after the item in progress) and wait for it up to ``timeout_s``."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=timeout_s)

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._mailbox is None and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                item, self._mailbox = self._mailbox, None
            try:
                self._handle(item)
            except Exception as err:  # the worker must survive anything an item brings
                self._on_error(item, err)
