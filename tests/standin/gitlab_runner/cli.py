"""Command line (main.go, commands/register.go, commands/multi.go, commands/unregister.go
flag names and environment variables)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from . import NAME, REVISION, UPSTREAM, VERSION, config, log
from .errors import StandinError
from .multi import RunCommand
from .network import GitLabClient
from .register import register
from .systemid import load_or_create

DEFAULT_CONFIG = "/etc/gitlab-runner/config.toml"


def _bool(text: str) -> bool:
    """go-flags booleans: ``--flag`` or ``--flag=true|false``."""
    lowered = text.strip().lower()
    if lowered in ("1", "t", "true", "yes"):
        return True
    if lowered in ("0", "f", "false", "no", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text}")


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    return default if raw is None else _bool(raw)


def _env_list(name: str) -> list[str]:
    raw = os.environ.get(name, "")
    return [part for part in raw.split(",") if part] if raw else []


def _flag(parser: argparse.ArgumentParser, *names: str, env: str, default: bool = False) -> None:
    parser.add_argument(*names, nargs="?", const=True, type=_bool, default=_env_bool(env, default))


def _register_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reg = sub.add_parser("register", help="register a new runner")
    env = os.environ.get
    _flag(reg, "--non-interactive", "-n", env="REGISTER_NON_INTERACTIVE")
    reg.add_argument("--config", "-c", default=env("CONFIG_FILE", DEFAULT_CONFIG))
    reg.add_argument("--url", "-u", default=env("CI_SERVER_URL", ""))
    reg.add_argument("--token", "-t", default=env("CI_SERVER_TOKEN", ""))
    reg.add_argument("--registration-token", "-r", default=env("REGISTRATION_TOKEN", ""))
    reg.add_argument("--executor", default=env("RUNNER_EXECUTOR", ""))
    reg.add_argument("--name", "--description", dest="name", default=env("RUNNER_NAME", ""))
    reg.add_argument("--tag-list", default=env("RUNNER_TAG_LIST", ""))
    _flag(reg, "--run-untagged", env="REGISTER_RUN_UNTAGGED")
    _flag(reg, "--locked", env="REGISTER_LOCKED", default=True)
    reg.add_argument("--access-level", default=env("REGISTER_ACCESS_LEVEL", ""))
    reg.add_argument(
        "--maximum-timeout", type=int, default=int(env("REGISTER_MAXIMUM_TIMEOUT", "0"))
    )
    _flag(reg, "--paused", env="REGISTER_PAUSED")
    reg.add_argument("--maintenance-note", default=env("REGISTER_MAINTENANCE_NOTE", ""))
    _flag(reg, "--leave-runner", env="REGISTER_LEAVE_RUNNER")
    reg.add_argument("--limit", type=int, default=int(env("RUNNER_LIMIT", "0")))
    reg.add_argument(
        "--request-concurrency", type=int, default=int(env("RUNNER_REQUEST_CONCURRENCY", "0"))
    )
    reg.add_argument("--env", action="append", default=_env_list("RUNNER_ENV"))
    # common/config.go FeatureFlags: a map flag, NAME:VALUE, repeated.
    reg.add_argument("--feature-flags", action="append", default=[])
    reg.add_argument("--docker-image", default=env("DOCKER_IMAGE", ""))
    reg.add_argument("--docker-host", default=env("DOCKER_HOST", ""))
    _flag(reg, "--docker-privileged", env="DOCKER_PRIVILEGED")
    reg.add_argument("--docker-volumes", action="append", default=_env_list("DOCKER_VOLUMES"))
    reg.add_argument("--docker-cache-dir", default=env("DOCKER_CACHE_DIR", ""))
    reg.add_argument(
        "--docker-pull-policy", action="append", default=_env_list("DOCKER_PULL_POLICY")
    )
    reg.add_argument("--docker-helper-image", default=env("DOCKER_HELPER_IMAGE", ""))
    reg.add_argument("--docker-network-mode", default=env("DOCKER_NETWORK_MODE", ""))
    _flag(reg, "--docker-disable-cache", env="DOCKER_DISABLE_CACHE")
    _flag(reg, "--docker-tlsverify", env="DOCKER_TLS_VERIFY")
    _custom_flags(reg)


def _custom_flags(reg: argparse.ArgumentParser) -> None:
    """common/config.go ``CustomConfig`` under ``RunnerSettings.Custom``'s ``custom``
    namespace: ``--custom-<long>``, the ``env:`` variables where it has them; the
    ``[]string`` args append one element per flag (go-flags, as ``--docker-volumes``)."""
    env = os.environ.get
    for stage in ("config", "prepare", "run", "cleanup"):
        upper = stage.upper()
        reg.add_argument(f"--custom-{stage}-exec", default=env(f"CUSTOM_{upper}_EXEC", ""))
        reg.add_argument(f"--custom-{stage}-args", action="append", default=[])
    for name in ("config-exec", "prepare-exec", "cleanup-exec"):
        key = f"CUSTOM_{name.upper().replace('-', '_')}_TIMEOUT"
        reg.add_argument(f"--custom-{name}-timeout", type=int, default=_env_int(key))
    for name in ("graceful-kill", "force-kill"):
        key = f"CUSTOM_{name.upper().replace('-', '_')}_TIMEOUT"
        reg.add_argument(f"--custom-{name}-timeout", type=int, default=_env_int(key))


def _env_int(name: str) -> int | None:
    """A ``*int`` option's environment variable (None: unset, the key stays out)."""
    raw = os.environ.get(name)
    return int(raw) if raw else None


def parser() -> argparse.ArgumentParser:
    """The ``gitlab-runner`` argument parser."""
    top = argparse.ArgumentParser(prog=NAME, description="a test stand-in for gitlab-runner")
    top.add_argument("--version", "-v", action="store_true")
    top.add_argument("--log-level", "-l", default=os.environ.get("LOG_LEVEL", ""))
    top.add_argument("--debug", action="store_true")
    sub = top.add_subparsers(dest="command")
    _register_parser(sub)
    run = sub.add_parser("run", help="run multi runner service")
    run.add_argument("--working-directory", "-d", default="")
    run.add_argument("--config", "-c", default=os.environ.get("CONFIG_FILE", DEFAULT_CONFIG))
    run.add_argument("--user", "-u", default="")
    run.add_argument("--service", "-n", default="gitlab-runner")
    run.add_argument("--syslog", action="store_true")
    run.add_argument("--listen-address", default=os.environ.get("LISTEN_ADDRESS", ""))
    unreg = sub.add_parser("unregister", help="unregister specific runner")
    unreg.add_argument("--config", "-c", default=os.environ.get("CONFIG_FILE", DEFAULT_CONFIG))
    unreg.add_argument("--name", "-n", default="")
    unreg.add_argument("--token", "-t", default="")
    unreg.add_argument("--url", "-u", default="")
    unreg.add_argument("--all-runners", action="store_true")
    return top


def version_text() -> str:
    """``gitlab-runner --version`` (common/version.go ``Extended``)."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return (
        f"Version:      {VERSION}\nGit revision: {REVISION}\nGit branch:   {UPSTREAM}\n"
        f"GO version:   python{platform.python_version()}\nOS/Arch:      linux/{arch}"
    )


def unregister(args: argparse.Namespace) -> int:
    """commands/unregister.go: remove matching runners from GitLab and the config."""
    path = Path(args.config)
    current = config.load(path)
    system_id = load_or_create(path)
    keep, removed = [], 0
    for runner in current.runners:
        match = (
            args.all_runners
            or (args.name and runner.name == args.name)
            or (args.token and runner.token == args.token)
        )
        if match and GitLabClient().unregister_runner(runner.url, runner.token, system_id):
            removed += 1
            continue
        keep.append(runner.raw)
    if not removed:
        raise StandinError("No runner found to unregister")
    current.raw["runners"] = keep
    config.save(path, current.raw)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = parser().parse_args(argv)
    if args.version:
        print(version_text())
        return 0
    try:
        log.set_level("debug" if args.debug else args.log_level or "info")
    except ValueError as exc:
        print(f"FATAL: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "register":
            return register(args)
        if args.command == "unregister":
            return unregister(args)
        if args.command == "run":
            if args.working_directory:
                os.chdir(args.working_directory)
            return RunCommand(Path(args.config), listen_address=args.listen_address).run()
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        log.fatal(f"Service run failed: {exc}")
        return 1
    except (StandinError, OSError) as exc:
        log.fatal(str(exc))
        return 1
    parser().print_help()
    return 1
