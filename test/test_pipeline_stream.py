"""Serving a stream (pipeline/stream.py): newest-only worker, statistics, log throttle."""

from __future__ import annotations

import threading
import time

from stereo_hand_mesh.pipeline.stream import LogThrottle, NewestOnlyWorker, PairStatistics


def _wait_for(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_the_worker_takes_the_newest_item_and_reports_replaced_ones():
    release = threading.Event()
    handled: list[int] = []

    def handle(item: int) -> None:
        if item == 0:
            release.wait(5.0)  # hold the worker busy while items 1..3 arrive
        handled.append(item)

    worker = NewestOnlyWorker(handle, lambda item, err: None, "test_worker")
    try:
        assert worker.put(0) is False
        assert _wait_for(lambda: worker._mailbox is None)  # the worker took item 0
        assert [worker.put(i) for i in (1, 2, 3)] == [False, True, True]
        release.set()
        assert _wait_for(lambda: handled == [0, 3]), handled
    finally:
        worker.stop()
    assert not worker._thread.is_alive()


def test_the_worker_survives_an_error_and_reports_it():
    errors: list[tuple[int, str]] = []
    handled: list[int] = []

    def handle(item: int) -> None:
        if item == 1:
            raise RuntimeError("bad pair")
        handled.append(item)

    worker = NewestOnlyWorker(handle, lambda item, err: errors.append((item, str(err))))
    try:
        worker.put(1)
        assert _wait_for(lambda: errors == [(1, "bad pair")])
        worker.put(2)
        assert _wait_for(lambda: handled == [2])
    finally:
        worker.stop()


def test_statistics_count_and_window():
    stats = PairStatistics()
    stats.record(10.0, 20.0, True)
    stats.record(12.0, 25.0, False)
    assert (stats.processed, stats.meshes, stats.without_mesh) == (2, 1, 1)
    recent = stats.recent(60.0)
    assert [(r[1], r[2], r[3]) for r in recent] == [(10.0, 20.0, True), (12.0, 25.0, False)]
    assert stats.recent(-1.0) == []


def test_throttle_holds_back_and_counts():
    throttle = LogThrottle(60.0)
    assert throttle("a") == 0
    assert throttle("a") is None
    assert throttle("a") is None
    assert throttle("b") == 0  # keys are independent
    quick = LogThrottle(0.0)
    assert quick("a") == 0 and quick("a") == 0
