"""Cancellation contexts, a small model of Go's ``context.Context``.

gitlab-runner threads one context per job (deadline = job timeout, cancelled on abort),
a child per user script (cancelled when GitLab asks to cancel gracefully) and fresh
ones for cleanup (common/build.go ``Run``, ``executeUserScripts``; executors/docker
``Cleanup``). Blocking calls here poll :meth:`Context.wait` or register a callback
with :meth:`Context.on_done` to close their sockets, as Go closes hijacked streams.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

CANCELED = "context canceled"
DEADLINE_EXCEEDED = "context deadline exceeded"


class ContextError(Exception):
    """Raised by :meth:`Context.check` once the context is done."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class Context:
    """A cancellable scope with an optional timeout, cancelled with its parent."""

    def __init__(self, parent: Context | None = None, timeout: float | None = None) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._cause: str | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._timer: threading.Timer | None = None
        if timeout is not None:
            self._timer = threading.Timer(max(timeout, 0.0), self.cancel, (DEADLINE_EXCEEDED,))
            self._timer.daemon = True
            self._timer.start()
        if parent is not None:
            parent.on_done(lambda: self.cancel(parent.err() or CANCELED))

    def cancel(self, cause: str = CANCELED) -> None:
        """Mark the context done (first cause wins) and run the done callbacks."""
        with self._lock:
            if self._cause is not None:
                return
            self._cause = cause
            callbacks, self._callbacks = self._callbacks, []
        self._event.set()
        if self._timer is not None:
            self._timer.cancel()
        for callback in callbacks:
            callback()

    def release(self) -> None:
        """Stop the deadline timer of a context that is no longer used."""
        if self._timer is not None:
            self._timer.cancel()

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the context is done (at once if it already is)."""
        with self._lock:
            if self._cause is None:
                self._callbacks.append(callback)
                return
        callback()

    def err(self) -> str | None:
        """``None`` while running, else the cause (:data:`CANCELED`, :data:`DEADLINE_EXCEEDED`)."""
        return self._cause

    def done(self) -> bool:
        """Whether the context is done."""
        return self._event.is_set()

    def wait(self, seconds: float | None = None) -> bool:
        """Sleep up to ``seconds`` (forever with ``None``); return whether it is done."""
        return self._event.wait(seconds)

    def check(self) -> None:
        """Raise :class:`ContextError` if the context is done."""
        cause = self._cause
        if cause is not None:
            raise ContextError(cause)
