"""The ``pipglr`` command: the operator's side of pipglr.

``doctor`` checks the host; ``register`` adds runners to the config.toml secret
(docker or custom executor); ``executor toml`` prints the custom executor's section;
``config show|get|set|edit`` reads and changes it safely; ``up``/``down``/
``status``/``storage``/``logs`` run the container from the image's ``run`` label; ``quadlet``
writes systemd units for it; ``mirror``/``ca``/``proxy``/``registry`` keep the
company-network settings (:mod:`pipglr.ops.netops`); ``images`` keeps the maintained job
images (:mod:`pipglr.ops.jobimages`); ``labels``/``runlabel`` show and execute
the image's runlabels. Errors are one ``pipglr: ...`` line and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pipglr import customsection, layout, runnerconfig
from pipglr.build import engine, labels
from pipglr.errors import PipglrError, UsageError
from pipglr.ops import (
    cliparser,
    configedit,
    configsecret,
    doctor,
    metricsport,
    netops,
    privilege,
    quadlet,
    status,
)
from pipglr.ops.lifecycle import resource_args, with_extra
from pipglr.ops.operate import Operator
from pipglr.ops.outer import Outer


def image_runlabels(image: str, url: str | None = None) -> dict[str, str]:
    """The runlabels stored in ``image`` (only the names pipglr defines), via podman-py."""
    with engine.client(url) as podman:
        found = engine.image_labels(podman, image)
    missing = [name for name in labels.LABELS if name not in found]
    if missing:
        raise UsageError(
            f"{image} has no {', '.join(missing)} label: is it a pipglr image? "
            "Build one with `invoke build`"
        )
    return {name: found[name] for name in labels.LABELS}


def command_argv(
    texts: dict[str, str], image: str, name: str, extra: Sequence[str] = ()
) -> list[str]:
    """The argv of label ``name`` (texts read from ``image``), ``extra`` appended."""
    if name not in texts:
        raise UsageError(f"unknown runlabel {name!r}: use one of {', '.join(texts)}")
    return labels.argv_from_text(texts[name], image) + list(extra)


#: Why root may not start pipglr without saying so (issue: rootful outer shares host ids).
HOST_IDS_REFUSAL = (
    "run by root, the outer container would share the host's ids 1-999 with jobs (a job "
    "could act as a system group such as disk): run pipglr as an unprivileged user "
    "(README: Host prerequisites), or pass --allow-host-ids to accept that"
)


def _starts_pipglr(args: argparse.Namespace) -> bool:
    """Whether the command starts (or installs the start of) the outer container."""
    if args.command == "runlabel":
        return bool(args.name == "run")
    return bool(args.command in ("up", "quadlet"))


def _allows_host_ids(args: argparse.Namespace) -> bool:
    """``--allow-host-ids`` given to a command that starts pipglr."""
    return _starts_pipglr(args) and bool(getattr(args, "allow_host_ids", False))


def _read_password() -> str:
    """The password from stdin: asked without echo on a terminal, else read as piped
    (one trailing newline dropped)."""
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.read().removesuffix("\n").removesuffix("\r")


def _network(op: Operator, args: argparse.Namespace) -> int:
    """``mirror``, ``ca``, ``proxy``, ``registry``: a change prints one line, a listing
    one line per item."""
    ops = netops.NetworkOps.of(op.outer, op.image)
    command, action = args.command, args.action
    lines: list[str]
    empty = f"none stored: see `pipglr {command} --help`"
    if action == "list" or (command, action) == ("proxy", "show"):
        lines = {"mirror": ops.mirror_list, "ca": ops.ca_list, "proxy": ops.proxy_show,
                 "registry": ops.login_list}[command]()  # fmt: skip
        print("\n".join(lines) if lines else f"pipglr: {empty}")
        return 0
    if command == "mirror":
        said = (ops.mirror_add(args.registry, args.mirror, args.insecure) if action == "add"
                else ops.mirror_remove(args.registry))  # fmt: skip
    elif command == "ca":
        said = ops.ca_add(args.file, args.name) if action == "add" else ops.ca_remove(args.name)
    elif command == "proxy":
        said = (ops.proxy_set(args.url, args.http, args.https, args.no_proxy) if action == "set"
                else ops.proxy_clear())  # fmt: skip
    elif action == "login":
        # A bad registry is refused before the password is asked for.
        registry = netops.host_port(args.registry)
        said = ops.login(registry, args.username, _read_password())
    else:
        said = ops.logout(args.registry)
    print(f"pipglr: {said}")
    return 0


def _images(op: Operator, args: argparse.Namespace) -> int:
    """``images add|list|build|shell|remove``."""
    if args.action == "add":
        names = op.images_add(Path(args.dir))
        print(f"pipglr: added {', '.join(names)} (as {layout.MAINTAINED_PREFIX}NAME)"
              + ("" if args.build else "; `pipglr images build` builds them"))  # fmt: skip
        return op.images_build() if args.build else 0
    if args.action == "list":
        print(op.images_list(args.json))
        return 0
    if args.action == "build":
        return op.images_build(args.names, args.pull)
    if args.action == "shell":
        if not sys.stdin.isatty():
            raise UsageError("`pipglr images shell` is interactive: run it in a terminal")
        return op.images_shell(args.name, args.commit)
    for line in op.images_remove(args.name):
        print(f"pipglr: {line}")
    return 0


def _read_token(path: str | None) -> str:
    if path:
        return Path(path).read_text().strip()
    if sys.stdin.isatty():
        return getpass.getpass("registration or authentication token: ").strip()
    return sys.stdin.read().strip()


def _restart_hint(op: Operator) -> str:
    exists = op.outer.run("container", "exists", layout.CONTAINER_NAME, check=False)
    return " — restart to apply: pipglr down && pipglr up" if exists.returncode == 0 else ""


def private_stdout() -> None:
    """Before printing tokens: when stdout is a file (``> config.toml``), take the group's
    and others' permissions off it (the shell created it with the umask, usually 0644);
    refused when that is not possible (a file of someone else's)."""
    try:
        fd = sys.stdout.fileno()
        info = os.fstat(fd)
    except (OSError, ValueError):
        return  # no file descriptor (a captured stdout): nothing on disk
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o077:
        return
    try:
        os.fchmod(fd, stat.S_IMODE(info.st_mode) & ~0o077)
    except OSError as exc:
        raise UsageError(
            f"stdout is a file others can read (mode {stat.S_IMODE(info.st_mode):04o}) "
            f"and making it private failed ({exc.strerror}): write the tokens to a file "
            "of your own, e.g. (umask 077; pipglr config show --show-secrets > config.toml)"
        ) from exc


def _config(op: Operator, args: argparse.Namespace) -> int:
    text = op.read_config()
    if args.action == "show":
        if args.show_secrets:
            private_stdout()
        print(text if args.show_secrets else configedit.redact(text), end="")
        return 0
    if args.action == "get":
        if args.key.rsplit(".", 1)[-1] in configedit.SECRET_KEYS:
            private_stdout()
        value = configedit.get(text, args.key)
        print(json.dumps(value) if not isinstance(value, str) else value)
        return 0
    if args.action == "set":
        for assignment in args.assignments:
            key, eq, raw = assignment.partition("=")
            if not eq:
                raise UsageError(f"{assignment!r} is not KEY=VALUE")
            text = configedit.set_value(text, key.strip(), raw.strip())
    else:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        edited = configedit.edit(text, shlex.split(editor))
        if edited == text:
            print("pipglr: no change")
            return 0
        try:
            runnerconfig.check(runnerconfig.parse(edited))
        except PipglrError as exc:
            # Kept where the backups are (0600 in a 0700 directory, rotated), not in /tmp.
            kept = configsecret.backup(edited, f"{layout.CONFIG_SECRET}-rejected")
            raise UsageError(f"{exc} (your edit is kept in {kept})") from exc
        text = edited
    backup = op.replace_config(text)
    print(f"pipglr: config.toml secret updated (backup: {backup}){_restart_hint(op)}")
    return 0


def _shown(value: object) -> str:
    """A status value as text: tables as JSON, lists joined (``none`` when empty)."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "none"
    return str(value)


def _quadlet_choice(op: Operator) -> tuple[privilege.OuterChoice | None, str]:
    """The unit's outer options (``None``: the label's, without a config.toml secret
    yet) and the line saying so; the unit keeps them until written again."""
    again = "run `pipglr quadlet` again when config.toml changes privilege"
    if layout.CONFIG_SECRET not in op.secrets():
        return None, f"no config.toml secret yet: the unit keeps the run label's options; {again}"
    choice = privilege.choose(op.read_config())
    return choice, f"{choice.summary()}; {again}"


def _quadlet_secrets(stored: Sequence[str]) -> str:
    """The line saying which network secrets the unit mounts."""
    names = [option.split(",")[0] for option in stored[1::2]]
    again = "run `pipglr quadlet` again after the first or last mirror/ca/proxy/registry change"
    return f"the unit mounts {', '.join(names) or 'no network secrets'}; {again}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipglr`` command."""
    args = cliparser.parser().parse_args(argv)
    if args.command == "runlabel" and "--allow-host-ids" in args.args:
        # `runlabel run --allow-host-ids`: the flag, not an argument for the label.
        args.args.remove("--allow-host-ids")
        args.allow_host_ids = True
    rootful = os.geteuid() == 0 and args.podman == "podman"
    outer = Outer("rootful" if rootful else "rootless", tuple(shlex.split(args.podman)))
    op = Operator(outer, args.image)
    try:
        if rootful and _starts_pipglr(args) and not args.allow_host_ids:
            raise UsageError(HOST_IDS_REFUSAL)
        # The image's own guard (pipglr/guest/hostids.py) asks for the same consent.
        accept = [layout.HOST_IDS_CONSENT] if _allows_host_ids(args) else []
        # `--metrics [ADDR:]PORT` of up/quadlet: refused before podman is asked anything.
        spec = getattr(args, "metrics", None)
        metrics = metricsport.parse(spec) if spec is not None else None
        if args.command == "doctor":
            findings = [
                *doctor.gather(args.user, outer.podman),
                *privilege.findings(op),
                *netops.doctor_findings(netops.NetworkOps.of(outer, args.image)),
            ]
            if args.json:
                print(json.dumps(doctor.as_dicts(findings), indent=2))
            else:
                print(doctor.render(findings, colour=sys.stdout.isatty()), end="")
            return 1 if any(f.blocks for f in findings) else 0
        if args.command == "labels":
            texts = image_runlabels(args.image)
            for name in [args.name] if args.name else list(texts):
                print(f"{name}: {shlex.join(command_argv(texts, args.image, name))}")
            return 0
        if args.command == "runlabel":
            label = op.label_args(args.name)
            if args.name == "dumpconfig":
                private_stdout()  # `pipglr runlabel dumpconfig > config.toml`
            if accept:
                label = with_extra(label, args.image, resource_args(env=accept))
            command = [*outer.podman, *label, *args.args]
            print(f"+ {shlex.join(command)}", file=sys.stderr, flush=True)
            return subprocess.run(command, check=False).returncode
        if args.command == "executor":
            # Nothing asked of podman: the section is the same in every image.
            print(customsection.render(args.default_image), end="")
            return 0
        if args.command == "register":
            if args.default_image is not None:
                customsection.check_image(args.default_image)  # before the token is read
            count, backup = op.register(
                _read_token(args.token_file), args.url, args.description, args.tags,
                args.run_untagged, args.count, args.concurrency,
                args.executor, args.default_image,
            )  # fmt: skip
            print(f"pipglr: config.toml secret has {count} runner(s) (backup: {backup})"
                  f"{_restart_hint(op)}")  # fmt: skip
            return 0
        if args.command == "config":
            return _config(op, args)
        if args.command in ("mirror", "ca", "proxy", "registry"):
            return _network(op, args)
        if args.command == "images":
            return _images(op, args)
        if args.command == "up":
            choice = privilege.choose(op.read_config())
            print(f"pipglr: {choice.summary()}", flush=True)
            cid = op.up(args.cpus, args.memory, args.pids, args.volume, [*args.env, *accept],
                        choice, metrics)  # fmt: skip
            print(f"pipglr: started ({cid[:12]}); follow with `pipglr logs -f`")
            if metrics is not None:
                print(f"pipglr: metrics at http://{metrics}/metrics and "
                      f"http://{metrics}/runner/metrics")  # fmt: skip
            return 0
        if args.command == "down":
            print("pipglr: removed" if op.down(args.time) else "pipglr: not running")
            return 0
        if args.command == "status":
            report = op.status()
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                for key, value in report.items():
                    if key in ("metrics", "metrics_error"):
                        continue  # in the metrics line
                    if key == "metrics_published":
                        print(f"{'metrics':>14}: {status.metrics_line(report)}")
                    else:
                        print(f"{key:>14}: {_shown(value)}")
            return 0 if report.get("container") == "running" else 3
        if args.command == "storage":
            print(op.storage_report(args.json))
            return 0
        if args.command == "logs":
            return subprocess.run(op.logs_argv(args.follow), check=False).returncode
        if args.command == "quadlet":
            env = [*args.env, *accept]
            # The optional network secrets become Secret= lines, if they exist now.
            stored = labels.optional_secret_args(op.secrets())
            extra = [
                *stored,
                *resource_args(args.cpus, args.memory, args.pids, args.volume, env, metrics),
            ]
            if args.auto_update:
                quadlet.check_auto_update(args.image, doctor.podman_version(outer.podman))
            unit_choice, said = _quadlet_choice(op)
            run_args = privilege.fit(op.label_args("run"), unit_choice)
            files = quadlet.from_run_args(
                with_extra(run_args, args.image, extra), args.image, args.auto_update, said
            )
            print(f"pipglr: {said}")
            print(f"pipglr: {_quadlet_secrets(stored)}")
            directory = Path(args.dir) if args.dir else quadlet.default_directory()
            for path in files.write(directory):
                print(path)
            print("pipglr: then `systemctl --user daemon-reload && systemctl --user start "
                  "pipglr`")  # fmt: skip
            return 0
        raise UsageError(f"unknown command {args.command!r}")
    except PipglrError as exc:
        print(f"pipglr: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
