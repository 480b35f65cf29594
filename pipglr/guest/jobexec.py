"""One stage of a custom-executor job: the stage script copied into a running
container, executed there with its output streamed, its exit code returned; and the
stop of a stage on SIGTERM.

The runner writes each stage's script to a file on its side and passes its path
(executors/custom/custom.go ``executor.Run``); the script is the bash shell's
(shells/bash.go ``BashWriter.Finish``: ``#!/usr/bin/env bash``, the body in a
subshell). It goes into the container with ``put_archive`` under :data:`SCRIPT_DIR`
(0644: a job image's own user reads it) and runs under bash, else ``sh``, found as
upstream's docker executor finds it (shells/bash.go ``BashDetectShellScript``).

Helper stages run with ``umask 0000`` (the helper image's ``gitlab-runner-build``,
helpers/container/helperimage/linux_info.go ``bashCmd``: what the helper writes stays
writable for a job image's non-root user) and with ``gitlab-runner`` on the PATH: the
custom executor's scripts call the runner command by that name
(main.go ``custom.NewProvider("gitlab-runner")``, shells/abstract.go
``guardRunnerCommand``), the helper image has it as ``gitlab-runner-helper``
(dockerfiles/runner-helper/Dockerfile), so :data:`WRAPPER` links it under
``/.pipglr/bin`` in the helper container (never in the job image).

Exec over the libpod API as podman-py's ``Container.exec_run`` does it (create,
start, inspect), with the start's multiplexed stream demultiplexed here
(:class:`Frames`, docker's stdcopy framing) so output reaches the job log as it comes.
"""

from __future__ import annotations

import io
import json
import secrets
import struct
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

SCRIPT_DIR = ".pipglr"
#: ``sh -c WRAPPER pipglr-stage SCRIPT HELPER``: HELPER non-empty in the helper.
WRAPPER = (
    'if [ -n "$2" ]; then umask 0000; mkdir -p /.pipglr/bin'
    ' && ln -sf "$(command -v gitlab-runner-helper)" /.pipglr/bin/gitlab-runner'
    ' && export PATH="/.pipglr/bin:${PATH:-/usr/local/bin:/usr/bin:/bin}"; fi\n'
    "for b in /usr/local/bin/bash /usr/bin/bash /bin/bash; do\n"
    '  if [ -x "$b" ]; then exec "$b" "$1"; fi\n'
    "done\n"
    'exec sh "$1"\n'
)
#: Ends a stage: TERM, then KILL after ``$1`` seconds, to every process but PID 1 (the
#: keepalive) and itself — upstream ends a docker job's processes the same way
#: (shells/bash.go ``ContainerSigTermScriptForLinux``), here without its per-process wait.
KILLER = (
    "others() { for p in $(cd /proc && ls -d [0-9]*); do"
    ' [ "$p" -ne 1 ] && [ "$p" -ne $$ ] && echo "$p"; done; }\n'
    "kill -TERM $(others) 2>/dev/null\n"
    'i=0; while [ "$i" -lt "$1" ] && [ -n "$(others)" ]; do sleep 1; i=$((i+1)); done\n'
    "kill -KILL $(others) 2>/dev/null\n"
    "exit 0\n"
)
STDOUT, STDERR = 1, 2


class Frames:
    """docker's stdcopy framing (``[stream, 0, 0, 0, size:be32] payload``): feed bytes,
    take whole frames."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self.buffer += data
        while len(self.buffer) >= 8:
            kind, size = struct.unpack(">BxxxL", self.buffer[:8])
            if len(self.buffer) < 8 + size:
                return
            payload, self.buffer = self.buffer[8 : 8 + size], self.buffer[8 + size :]
            yield kind, payload


def script_archive(name: str, script: bytes) -> bytes:
    """A tar of ``SCRIPT_DIR/name`` (0644) for ``put_archive`` to ``/``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        folder = tarfile.TarInfo(SCRIPT_DIR)
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        tar.addfile(folder)
        entry = tarfile.TarInfo(f"{SCRIPT_DIR}/{name}")
        entry.size, entry.mode, entry.mtime = len(script), 0o644, int(time.time())
        tar.addfile(entry, io.BytesIO(script))
    return out.getvalue()


def copy_script(client: Any, container: str, stage: str, script: bytes) -> str:
    """Put the stage's script into ``container``; its path there."""
    name = f"{stage}-{secrets.token_hex(4)}.sh"
    box = client.containers.get(container)
    if not box.put_archive("/", script_archive(name, script)):
        raise OSError(f"could not copy the {stage} script into {container}")
    return f"/{SCRIPT_DIR}/{name}"


def exec_create(client: Any, container: str, argv: list[str]) -> str:
    """``POST /containers/{name}/exec``; the exec id."""
    body = {
        "AttachStdout": True,
        "AttachStderr": True,
        "AttachStdin": False,
        "Tty": False,
        "Cmd": argv,
    }
    response = client.api.post(f"/containers/{container}/exec", data=json.dumps(body))
    response.raise_for_status()
    return str(response.json()["Id"])


def exec_stream(client: Any, exec_id: str) -> Iterable[bytes]:
    """``POST /exec/{id}/start``, attached: the raw multiplexed output."""
    response = client.api.post(
        f"/exec/{exec_id}/start", data=json.dumps({"Detach": False, "Tty": False}), stream=True
    )
    response.raise_for_status()
    return _as_it_comes(response.raw)


def _as_it_comes(raw: Any) -> Iterator[bytes]:
    """What the attached exec sent so far, chunk by chunk. Not ``iter_content``: the
    start answer is a raw stream without a length, and requests reads such a body
    until it ends (the whole stage), so a trace would show nothing while a step runs.
    ``read1`` returns whatever has arrived (urllib3 2's, else http.client's)."""
    read1 = getattr(raw, "read1", None) or raw._fp.read1
    while chunk := read1(65536):
        yield bytes(chunk)


def exec_exit_code(client: Any, exec_id: str, wait: float = 10.0) -> int | None:
    """``GET /exec/{id}/json``'s ExitCode once the exec stopped running (None: still
    running after ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        response = client.api.get(f"/exec/{exec_id}/json")
        response.raise_for_status()
        info = response.json()
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def run_stage(
    client: Any,
    container: str,
    stage: str,
    script: bytes,
    helper: bool,
    write: Callable[[int, bytes], None],
    started: Callable[[str], None] = lambda exec_id: None,
) -> int:
    """Run a stage script in ``container``, ``write(stream, bytes)`` its output; the
    script's exit code. ``started(exec id)`` once the exec exists."""
    path = copy_script(client, container, stage, script)
    argv = ["/bin/sh", "-c", WRAPPER, "pipglr-stage", path, "helper" if helper else ""]
    exec_id = exec_create(client, container, argv)
    started(exec_id)
    frames = Frames()
    for chunk in exec_stream(client, exec_id):
        for kind, payload in frames.feed(chunk):
            write(STDERR if kind == STDERR else STDOUT, payload)
    code = exec_exit_code(client, exec_id)
    if code is None:
        raise OSError(f"the {stage} stage's output ended but its process still runs")
    return code


def stop_stage(client: Any, container: str, grace: int = 5) -> None:
    """End whatever runs in ``container`` besides its PID 1 (TERM, KILL after
    ``grace`` s), detached: returns at once."""
    exec_id = exec_create(client, container, ["/bin/sh", "-c", KILLER, "pipglr-stop", str(grace)])
    response = client.api.post(
        f"/exec/{exec_id}/start", data=json.dumps({"Detach": True, "Tty": False})
    )
    response.raise_for_status()
