"""A chain of threads joined by bounded channels (the archive output: compressor -> writer, and an encryptor
between them when it comes), where any failure stops every part at once.

The first error anywhere (a stage's exception, or fail() from the producer when it gives up) fails the whole
pipeline: every put() or get() that waits returns at once, every stage ends, and the producer gets the
error at its next put() and from close(). No thread ever waits for an end marker that cannot come.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable

END = object()          # the last item of a channel: the stage finishes and passes END on


class Stopped(Exception):
    """Raised in a stage's thread when the pipeline failed elsewhere: the stage ends quietly."""


class Channel:
    """A bounded queue whose waits end when the pipeline fails."""

    def __init__(self, pipeline: "Pipeline", depth: int) -> None:
        self._pipeline, self._depth = pipeline, depth
        self._items: deque = deque()
        self._changed = threading.Condition(threading.Lock())

    def put(self, item) -> None:
        """Append `item`, waiting while the channel is full; raises the pipeline's error if it failed."""
        with self._changed:
            while len(self._items) >= self._depth and self._pipeline.error is None:
                self._changed.wait()
            self._pipeline.check()
            self._items.append(item)
            self._changed.notify_all()

    def get(self):
        """The next item, waiting while there is none; Stopped if the pipeline failed."""
        with self._changed:
            while not self._items and self._pipeline.error is None:
                self._changed.wait()
            if self._pipeline.error is not None:
                raise Stopped
            item = self._items.popleft()
            self._changed.notify_all()
            return item

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


class Pipeline:
    """Stages in their own threads, each reading one channel; the first error is kept in `error`."""

    def __init__(self, stage_error: Callable[[str, BaseException], BaseException] | None = None) -> None:
        self.error: BaseException | None = None
        self._stage_error = stage_error     # (stage name, its exception) -> what the pipeline fails with
        self._lock = threading.Lock()
        self._channels: list[Channel] = []
        self._threads: list[threading.Thread] = []

    def channel(self, depth: int) -> Channel:
        channel = Channel(self, depth)
        self._channels.append(channel)
        return channel

    def stage(self, name: str, inbox: Channel, handle: Callable[[object], None],
              finish: Callable[[], None] | None = None, outbox: Channel | None = None) -> None:
        """Start a thread that calls handle(item) for each item of `inbox`; at END it calls finish() and
        puts END into `outbox` (the next stage's inbox, if any)."""
        thread = threading.Thread(target=self._run_stage, args=(name, inbox, handle, finish, outbox),
                                  name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run_stage(self, name: str, inbox: Channel, handle, finish, outbox: Channel | None) -> None:
        try:
            while (item := inbox.get()) is not END:
                handle(item)
            if finish is not None:
                finish()
            if outbox is not None:
                outbox.put(END)
        except Stopped:
            pass
        except BaseException as exc:    # ends the whole pipeline; the producer raises it
            self.fail(exc if self._stage_error is None else self._stage_error(name, exc))

    def fail(self, exc: BaseException) -> None:
        """Fail the pipeline with `exc` (the first error is kept) and wake every waiting thread."""
        with self._lock:
            if self.error is not None:
                return
            self.error = exc
        for channel in self._channels:
            channel.wake()

    def check(self) -> None:
        """Raise the pipeline's error, if it has one."""
        if self.error is not None:
            raise self.error

    def join(self) -> None:
        """Wait for every stage to end (they do: at END, or at once after a failure); raises the error."""
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        self.check()

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)
