"""Dispatch of the in-image commands (see :mod:`pipglr.guest`); one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipglr import layout, runnerconfig
from pipglr.errors import ConfigError, EngineError, PipglrError, UsageError
from pipglr.guest import (
    carryover,
    collector,
    health,
    hostids,
    netconfig,
    netguard,
    podmansetup,
    privileged,
    register,
    runnerstate,
    storagereserve,
)
from pipglr.settings import IMAGE_FACTS_PATH, load_image_facts

COMMANDS = (
    "network-setup",
    "setup-podman",
    "carry-over",
    "egress-guard",
    "host-ids-guard",
    "storage-check",
    "export-env",
    "evictor",
    "storage-report",
    "prune",
    "check-config",
    "prepare-runner",
    "dump-config",
    "register",
    "ping",
    "health",
    "metrics-collect",
    "metrics",
    "metrics-facts",
    "executor",
    "images-build",
    "images-list",
)


def _image_threshold() -> str:
    """The image's STORAGE_THRESHOLD build arg."""
    return load_image_facts(Path(IMAGE_FACTS_PATH).read_text()).storage_threshold


def _api_silent(command: str, exc: Exception) -> EngineError:
    """The one line for a podman-py failure of ``command``."""
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return EngineError(
        f"{command}: the nested podman API did not answer ({first}): "
        f"`systemctl status {layout.PODMAN_SERVICE_UNIT}` shows why"
    )


def _storage(command: str, rest: list[str]) -> None:
    """The storage-governance commands; podman-py is imported only for them."""
    from podman.errors import PodmanError

    from pipglr.guest import evictor, prune, storagereport

    try:
        if command == "export-env":
            environ = Path("/proc/1/environ").read_bytes()
            print(f"pipglr: {evictor.export_env(environ)}", flush=True)
        elif command == "evictor":
            evictor.serve(_image_threshold(), lambda line: print(f"pipglr: {line}", flush=True))
        elif command == "storage-report":
            print(storagereport.main(rest, _image_threshold()), flush=True)
        else:
            print(f"pipglr: {prune.main(_image_threshold())}", flush=True)
    except PodmanError as exc:
        raise _api_silent(command, exc) from None


def _images(command: str, rest: list[str]) -> None:
    """The maintained job images' commands (user podman); podman-py only for them."""
    from podman.errors import PodmanError

    from pipglr.guest import maintained, maintainedlist

    try:
        if command == "images-build":
            if os.geteuid() != layout.PODMAN.uid:
                # The podman CLI would build into the caller's own storage, not the jobs'.
                raise UsageError(
                    f"images-build builds into user {layout.PODMAN.name}'s storage: run it as "
                    f"that user (podman exec --user {layout.PODMAN.name} ...)"
                )
            print(f"pipglr: {maintained.main_build(rest)}", flush=True)
        else:
            print(maintainedlist.main(rest), flush=True)
    except PodmanError as exc:
        raise _api_silent(command, exc) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a guest command; print errors as one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    command, rest = (args[0], args[1:]) if args else ("", [])
    try:
        if command == "network-setup":
            print(f"pipglr: {netconfig.main()}", flush=True)
        elif command == "setup-podman":
            print(f"pipglr: {podmansetup.setup_podman()}", flush=True)
        elif command == "carry-over":
            print(f"pipglr: {carryover.carry_over().summary()}", flush=True)
        elif command == "egress-guard":
            facts = load_image_facts(Path(IMAGE_FACTS_PATH).read_text())
            openings = netconfig.load().openings()
            print(f"pipglr: {netguard.guard(facts.gitlab_url, openings)}", flush=True)
        elif command == "host-ids-guard":
            print(f"pipglr: {hostids.guard()}", flush=True)
        elif command == "storage-check":
            print(storagereserve.main_check(), flush=True)
        elif command in ("export-env", "evictor", "storage-report", "prune"):
            _storage(command, rest)
        elif command == "check-config":
            path = Path(rest[0]) if rest else Path(str(layout.CONFIG_PATH))
            names = runnerconfig.check_file(path)
            print(f"pipglr: config.toml has runners: {', '.join(names)}", flush=True)
            if rest[1:]:
                os.execv(rest[1], rest[1:])
        elif command == "prepare-runner":
            # prepare-runner SECRET STATE_CONFIG COMMAND...: check the secret, write the
            # effective config for the runner, exec COMMAND (the runner) on it.
            if len(rest) < 3:
                raise UsageError("prepare-runner needs SECRET STATE_CONFIG COMMAND...")
            names = runnerconfig.check_file(Path(rest[0]))
            jobs = netconfig.read_job_settings()
            text, carried = runnerstate.prepare(Path(rest[0]), Path(rest[1]), jobs)
            kept = f"; {carried} rotated token(s) kept from {rest[1]}" if carried else ""
            print(f"pipglr: config.toml has runners: {', '.join(names)}{kept}", flush=True)
            # A privileged runner in an unprivileged container: said, not refused (the
            # other runners work).
            if warning := privileged.boot_line(runnerconfig.parse(text)):
                print(f"pipglr: warning: {warning}", flush=True)
            os.execv(rest[2], rest[2:])
        elif command == "dump-config":
            secret = Path(rest[0]) if rest else Path(str(layout.CONFIG_PATH))
            state = Path(rest[1]) if rest[1:] else Path(str(layout.RUNNER_STATE_CONFIG))
            text, _ = runnerstate.effective_config(
                runnerconfig.read_file(secret), runnerstate.read_state(state)
            )
            sys.stdout.write(text)
        elif command == "register":
            register.register(rest)
        elif command == "ping":
            health.ping()
        elif command == "health":
            print(f"pipglr: {health.health()}", flush=True)
        elif command == "metrics-collect":
            collector.serve(lambda line: print(f"pipglr: {line}", flush=True))
        elif command == "metrics":
            from pipglr.guest import metrics

            metrics.serve(lambda line: print(f"pipglr: {line}", flush=True))
        elif command == "executor":
            # The custom executor's driver: its own exit-code contract, its own errors.
            from pipglr.guest import executor

            return executor.main(rest)
        elif command in ("images-build", "images-list"):
            _images(command, rest)
        elif command == "metrics-facts":
            from pipglr.guest import metricfacts

            print(metricfacts.main(rest), flush=True)
        else:
            raise UsageError(f"unknown command {command!r}: use {', '.join(COMMANDS)}")
    except ConfigError as exc:
        print(f"pipglr: {exc}", file=sys.stderr, flush=True)
        return layout.CONFIG_ERROR_STATUS
    except PipglrError as exc:
        print(f"pipglr: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0
