"""The job trace: buffer, incremental sender, final update (network/trace.go
``clientJobTrace``, helpers/trace/buffer.go, common/consts.go intervals and limits)."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable

from . import log
from .errors import map_failure_reason
from .network import GitLabClient, JobState

DEFAULT_UPDATE_INTERVAL = 3.0
MAX_UPDATE_INTERVAL = 15 * 60.0
FORCE_SEND_INTERVAL = 30.0
TRACE_PATCH_LIMIT = 1024 * 1024
DEFAULT_OUTPUT_LIMIT = 4 * 1024 * 1024
FINAL_UPDATE_RETRIES = 10
ANSI_BOLD_YELLOW = "\033[33;1m"
ANSI_RESET = "\033[0;m"


def truncate_safe_utf8(data: bytes, capacity: int) -> bytes:
    """helpers/trace/buffer.go ``truncateSafeUTF8``: cut at ``capacity``, then drop up
    to four more bytes while the cut ends in a broken (or invalid) UTF-8 sequence."""
    for _ in range(4):
        if capacity <= 0 or _last_rune_valid(data[:capacity]):
            break
        capacity -= 1
    return data[:capacity]


def _last_rune_valid(data: bytes) -> bool:
    """Not ``(RuneError, 1)`` from Go's ``utf8.DecodeLastRune``: the bytes from the last
    rune start (at most 4 back) decode to exactly one rune."""
    if data[-1] < 0x80:
        return True
    start = len(data) - 2
    while start > max(len(data) - 4, 0) - 1 and data[start] & 0xC0 == 0x80:
        start -= 1
    try:
        return len(data[max(start, 0) :].decode()) == 1
    except UnicodeDecodeError:
        return False


class TraceBuffer:
    """helpers/trace/buffer.go ``Buffer``: bytes, a crc32 checksum and the output limit
    (``limitWriter``)."""

    def __init__(self, limit: int = DEFAULT_OUTPUT_LIMIT) -> None:
        self._data = bytearray()
        self._crc = 0
        self._limit = limit
        self._full = False
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """``limitWriter.Write``: a write reaching the limit is cut there (not inside a
        UTF-8 character) and followed by the notice; later writes are dropped."""
        with self._lock:
            if self._full:
                return
            room = self._limit - len(self._data)
            if len(data) >= room:
                data = (
                    truncate_safe_utf8(data, room)
                    + (
                        f"\n{ANSI_BOLD_YELLOW}Job's log exceeded limit of {self._limit} bytes.\n"
                        "Job execution will continue but no more output will be collected."
                        f"{ANSI_RESET}\n"
                    ).encode()
                )
                self._full = True
            self._data += data
            self._crc = zlib.crc32(data, self._crc)

    def size(self) -> int:
        """Bytes written."""
        with self._lock:
            return len(self._data)

    def read(self, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from ``offset``."""
        with self._lock:
            return bytes(self._data[offset : offset + limit])

    def checksum(self) -> str:
        """``crc32:%08x`` (IEEE)."""
        with self._lock:
            return f"crc32:{self._crc:08x}"


class TraceSender:
    """The sending half of ``clientJobTrace``: patches from the sent offset, the idle
    "touch", the final update, and the server's update interval."""

    def __init__(
        self,
        client: GitLabClient,
        url: str,
        job_id: int,
        job_token: str,
        output_limit_kb: int = 0,
    ) -> None:
        self.client, self.url, self.job_id, self.job_token = client, url, job_id, job_token
        self.buffer = TraceBuffer(output_limit_kb * 1024 or DEFAULT_OUTPUT_LIMIT)
        self._lock = threading.Lock()
        self._sent = 0
        self._sent_time = time.monotonic()
        self._interval = DEFAULT_UPDATE_INTERVAL

    def _set_interval(self, remote: JobState) -> None:
        if remote.update_interval > 0:
            with self._lock:
                self._interval = min(remote.update_interval, MAX_UPDATE_INTERVAL)

    def _send_patch(self) -> tuple[str, JobState | None]:
        """``sendPatch``: the unsent bytes (at most 1 MiB) from the sent offset."""
        with self._lock:
            offset = self._sent
        content = self.buffer.read(offset, TRACE_PATCH_LIMIT)
        if not content:
            return "succeeded", None
        state, new_offset, remote = self.client.patch_trace(
            self.url, self.job_id, self.job_token, content, offset
        )
        self._set_interval(remote)
        if state in ("succeeded", "range_mismatch"):
            with self._lock:
                self._sent = new_offset
                self._sent_time = time.monotonic()
        return state, remote

    def _touch_job(self) -> tuple[str, JobState | None]:
        """``touchJob``: tell GitLab the job still runs when nothing was sent for 30 s."""
        with self._lock:
            idle = time.monotonic() - self._sent_time > FORCE_SEND_INTERVAL
        if not idle:
            return "succeeded", None
        result, remote = self.client.update_job(
            self.url,
            self.job_id,
            self.job_token,
            "running",
            checksum=self.buffer.checksum(),
            bytesize=self.buffer.size(),
        )
        self._set_interval(remote)
        if result == "succeeded":
            with self._lock:
                self._sent_time = time.monotonic()
        return result, remote

    def _final_update(self, state: str, reason: str, exit_code: int) -> bool:
        self._interval = DEFAULT_UPDATE_INTERVAL
        for _ in range(100):
            while self.buffer.size() != self._sent:
                patched, _ = self._send_patch()
                if patched in ("abort", "not_found"):
                    break
                if patched == "range_mismatch":
                    time.sleep(self._interval)
                elif patched == "failed":
                    time.sleep(self._interval)
                    return False
            result, remote = self.client.update_job(
                self.url,
                self.job_id,
                self.job_token,
                state,
                checksum=self.buffer.checksum(),
                bytesize=self.buffer.size(),
                failure_reason=reason,
                exit_code=exit_code,
            )
            self._set_interval(remote)
            if result in ("succeeded", "abort"):
                return True
            if result == "trace_validation_failed":
                with self._lock:
                    self._sent = 0
            if result == "failed":
                time.sleep(self._interval)
                return False
            time.sleep(self._interval)
        return False


class JobTrace(TraceSender):
    """``clientJobTrace``: sends patches every update interval and the final state."""

    def __init__(
        self,
        client: GitLabClient,
        url: str,
        job_id: int,
        job_token: str,
        output_limit_kb: int = 0,
    ) -> None:
        super().__init__(client, url, job_id, job_token, output_limit_kb)
        self.supported_failure_reasons: list[str] = []
        self._cancel: Callable[[], None] | None = None
        self._abort: Callable[[], None] | None = None
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "running"

    def write(self, data: bytes) -> None:
        """Append to the trace (sent by the watcher)."""
        self.buffer.write(data)

    def set_cancel_func(self, func: Callable[[], None] | None) -> None:
        """``SetCancelFunc``: what "canceling" does (stop the script, keep after_script)."""
        with self._lock:
            self._cancel = func

    def set_abort_func(self, func: Callable[[], None] | None) -> None:
        """``SetAbortFunc``: what "canceled"/"failed" does (stop everything)."""
        with self._lock:
            self._abort = func

    def cancel(self) -> bool:
        """``Cancel``: consume and call the cancel func."""
        with self._lock:
            func, self._cancel = self._cancel, None
        if func is None:
            return False
        func()
        return True

    def abort(self) -> bool:
        """``Abort``: consume and call the abort func (cancel is dropped too)."""
        with self._lock:
            func, self._abort, self._cancel = self._abort, None, None
        if func is None:
            return False
        func()
        return True

    def start(self) -> None:
        """``start``: run :meth:`_watch` in the background."""
        self._thread = threading.Thread(
            target=self._watch, name=f"trace-{self.job_id}", daemon=True
        )
        self._thread.start()

    def _watch(self) -> None:
        """``watch``: every interval an incremental update until finished."""
        while not self._finished.wait(self._interval):
            if not self._incremental_update():
                self._finished.wait()
                return

    def _incremental_update(self) -> bool:
        """``incrementalUpdate``: patch; touch the job when idle; act on cancel/abort."""
        state, remote = self._send_patch()
        if remote is not None and remote.cancel_requested:
            self.cancel()
        if state == "succeeded":
            touched, touch_remote = self._touch_job()
            if touch_remote is not None and touch_remote.cancel_requested:
                self.cancel()
            if touched == "abort":
                self.abort()
                return False
        elif state == "abort":
            self.abort()
            return False
        return True

    def success(self) -> None:
        """``Success``: final update with state success."""
        self._complete("success", "", 0)

    def fail(self, failure_reason: str, exit_code: int = 0) -> None:
        """``Fail``: final update with state failed, the mapped reason and exit code."""
        reason = map_failure_reason(failure_reason, self.supported_failure_reasons)
        self._complete("failed", reason, exit_code)

    def finish(self) -> None:
        """``Finish``: stop without a final update."""
        self._finished.set()

    def _complete(self, state: str, reason: str, exit_code: int) -> None:
        """``complete`` → ``finishWithFinalUpdate``: all trace sent, then the final
        UpdateJob, retried with backoff (``finalUpdate``)."""
        if self._state != "running":
            return
        self._state = state
        self._finished.set()
        for attempt in range(FINAL_UPDATE_RETRIES):
            if self._final_update(state, reason, exit_code):
                return
            time.sleep(min(2.0**attempt, 60.0))
        log.error("Job trace termination failed", job=self.job_id)
