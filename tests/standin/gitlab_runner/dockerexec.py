"""Run a script in a container stage by stage, and wait for containers
(executors/docker/internal/exec/exec.go ``defaultDocker.Exec``,
executors/docker/internal/wait/wait.go ``dockerWaiter``,
executors/docker/docker.go ``removeContainer``/``disconnectNetwork``/
``execScriptOnContainer``)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from . import log
from .context import Context, ContextError
from .dockerapi import DockerClient, DockerError
from .errors import BuildError
from .scripts import SIGTERM_SCRIPT

Writer = Callable[[bytes], None]


def wait_container(
    client: DockerClient, ctx: Context, container_id: str, stop: bool = False
) -> None:
    """``retryWait`` + ``wait``: ``POST /containers/ID/wait?condition=not-running``; with
    ``stop`` also ``POST /containers/ID/stop`` right away and every second until the wait
    answers (``StopKillWait``). Exit status != 0 raises BuildError("exit code N").
    A missing container counts as stopped."""
    retries = 0
    while True:
        ctx.check()
        try:
            _wait_once(client, ctx, container_id, stop)
            return
        except DockerError as exc:
            if exc.not_found:
                return
            if retries > 3:
                raise BuildError(f"waiting for container: {exc}") from exc
            retries += 1
            ctx.wait(1.0)


def _wait_once(client: DockerClient, ctx: Context, container_id: str, stop: bool) -> None:
    """``wait``: the wait request goes out first, then (``stopFn``) the stop requests."""
    pending = client.begin("POST", f"/containers/{container_id}/wait", {"condition": "not-running"})
    wake = threading.Event()
    pending.on_done = wake.set
    if pending.done():
        wake.set()
    ctx.on_done(wake.set)
    while not pending.done():
        if stop:
            try:
                client.call("POST", f"/containers/{container_id}/stop")
            except (DockerError, OSError) as exc:
                log.debug("stop", container=container_id[:12], error=exc)
        wake.wait(1.0)
        if not pending.done() and ctx.done():
            pending.close()
            raise ContextError(ctx.err() or "context canceled")
    answer = pending.result()
    code = int(answer.get("StatusCode", 0)) if isinstance(answer, dict) else 0
    if code != 0:
        raise BuildError(f"exit code {code}", exit_code=code)


def remove_container(client: DockerClient, container_id: str, keep_volumes: bool = False) -> None:
    """``removeContainer``: disconnect from networks it is still plugged into
    (``GET /networks``), then ``DELETE /containers/ID?force=1&v=1``; 404 is fine."""
    try:
        for network in client.call("GET", "/networks") or []:
            for plugged in (network.get("Containers") or {}).values():
                if plugged.get("Name") == container_id:
                    client.call(
                        "POST",
                        f"/networks/{network['Id']}/disconnect",
                        body={"Container": container_id, "Force": True},
                    )
    except DockerError as exc:
        log.debug("Can't get network list", error=exc)
    query = {"force": "1"} if keep_volumes else {"force": "1", "v": "1"}
    try:
        client.call("DELETE", f"/containers/{container_id}", query)
    except DockerError as exc:
        if not exc.not_found:
            raise


def exec_sigterm(client: DockerClient, container_id: str) -> None:
    """``sendSIGTERMToContainerProcs`` via ``execScriptOnContainer``: an exec of the
    SIGTERM script (it fails on a stopped container; errors are only logged)."""
    config = {
        "Tty": False,
        "AttachStderr": True,
        "AttachStdout": True,
        "Cmd": ["sh", "-c", SIGTERM_SCRIPT],
    }
    try:
        created = client.call("POST", f"/containers/{container_id}/exec", body=config)
        stream = client.hijack(
            "POST", f"/exec/{created['Id']}/start", body={"Detach": False, "Tty": False}
        )
    except (DockerError, OSError, KeyError) as exc:
        log.debug("Failed to exec create to container", container=container_id[:12], error=exc)
        return
    timer = threading.Timer(10.0, stream.close)
    timer.start()
    try:
        for _, payload in stream.frames():
            sys.stderr.buffer.write(payload)
    finally:
        timer.cancel()
        stream.close()


def exec_stage(
    client: DockerClient,
    stage_ctx: Context,
    executor_ctx: Context,
    container_id: str,
    script: str,
    output: Writer,
    graceful: bool,
) -> None:
    """``Exec``: attach (hijacked), start, script to stdin then half-close, stdout and
    stderr into ``output`` until EOF, cancel or a failed write of the script (``Exec``'s
    select ends on ``ctx.Done()``, ``stdinErrCh`` or ``stdoutErrCh``), then
    ``StopKillWait`` (the SIGTERM exec first for build containers) with the executor's
    context: the stage's result is the container's exit status."""
    stream = client.hijack(
        "POST",
        f"/containers/{container_id}/attach",
        {"stream": "1", "stdin": "1", "stdout": "1", "stderr": "1"},
    )
    try:
        client.call("POST", f"/containers/{container_id}/start")
    except BaseException:
        stream.close()
        raise
    done = threading.Event()

    def read_output() -> None:
        for _, payload in stream.frames():
            output(payload)
        stream.close()
        done.set()

    stdin_errors: list[OSError] = []

    def write_input() -> None:
        try:
            stream.write(script.encode())
        except OSError as exc:
            stream.close_write()
            stdin_errors.append(exc)  # stdinErrCh
            return
        stream.close_write()

    threading.Thread(target=read_output, daemon=True, name=f"out-{container_id[:12]}").start()
    threading.Thread(target=write_input, daemon=True, name=f"in-{container_id[:12]}").start()
    stage_ctx.on_done(stream.close)
    while not done.wait(0.2):
        if stage_ctx.done():
            log.debug("Container finished with aborted", container=container_id[:12])
            break
        if stdin_errors:
            log.debug("Container finished with", container=container_id[:12], error=stdin_errors[0])
            break
    stream.close()
    if graceful:
        # the graceful-exit func runs on context.Background() with a 10 s timeout
        exec_sigterm(client.detached(), container_id)
    wait_container(client, executor_ctx, container_id, stop=True)
