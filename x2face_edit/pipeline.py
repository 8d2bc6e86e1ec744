"""Overlapping the stages of video work in threads, so the slowest stage sets the pace.

Decoding (FFmpeg), the network (PyTorch) and encoding (x264) all release the GIL while
they work, so threads are enough to run them side by side.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import cv2

Item = TypeVar("Item")

_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterable[Item], depth: int = 8) -> Iterator[Item]:
    """Iterate ``items`` in a thread of its own, up to ``depth`` items ahead of the caller.

    An exception raised while producing an item is raised here, in the caller's thread,
    in its place. Stopping early (break, an exception) stops the producer thread too.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
            hand_over(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            hand_over(_Failed(error))

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        producer.join()


class InOrderWorker:
    """Runs submitted calls one after another in a background thread, in submission
    order, with at most ``depth`` waiting; their exceptions come back to the caller at
    the next ``submit`` or at ``finish``."""

    def __init__(self, depth: int = 8) -> None:
        self.depth = depth
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="in-order")
        self._pending: deque[Future] = deque()

    def submit(self, call: Callable[..., object], *args: object) -> None:
        self._pending.append(self._executor.submit(call, *args))
        while self._pending and (self._pending[0].done() or len(self._pending) > self.depth):
            self._pending.popleft().result()

    def finish(self) -> None:
        """Wait for every submitted call; raise the first exception among them."""
        while self._pending:
            self._pending.popleft().result()

    def __enter__(self) -> InOrderWorker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            if exc_type is None:
                self.finish()
        finally:
            for future in self._pending:
                future.cancel()
            self._executor.shutdown(wait=True)


_opencv_users = 0
_opencv_before = 0
_opencv_guard = threading.Lock()


@contextmanager
def opencv_in_one_thread() -> Iterator[None]:
    """OpenCV's own threads off while the stages share the cores: its work here is on
    small images (a face's crop, the matte's cells), where waking its pool costs more than
    it saves (benchmarks/README.md). The setting is the process's: taken by the first of
    runs that overlap (the studio renders and exports at once) and restored by the last."""
    global _opencv_users, _opencv_before
    with _opencv_guard:
        if _opencv_users == 0:
            _opencv_before = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _opencv_users += 1
    try:
        yield
    finally:
        with _opencv_guard:
            _opencv_users -= 1
            if _opencv_users == 0:
                cv2.setNumThreads(_opencv_before)
