#!/usr/bin/env python3
"""A tiny podman look-alike for unit tests of pipglr.ops.operate: secrets, labels, and a
container started by the run label (its inspect, units, config and storage use).

State lives in $FAKE_PODMAN_STATE: secrets/<name>, labels.json, calls.log. Setting
$FAKE_PODMAN_FAIL_CREATE=<name> makes the first `secret create <name>` fail (the
staging secret has another name and succeeds), to test rollbacks.
$FAKE_PODMAN_VERSION is what `podman version` says (4.3.1: no `secret create --replace`).
The run label's --publish shows in the inspect's port bindings; `metrics-facts` prints
the file metrics-facts.json of the state (absent: it fails like a guest without facts).

``exec ... --env ... pipglr COMMAND`` (pipglr.ops.jobimages) is logged to exec.jsonl and
answered by :func:`maintained`: ``sh -c`` scripts run for real on maintained/ (the
definitions directory); the nested podman keeps nested.json (images: entrypoint and
cmd; containers; in_use: images a job's container holds); $FAKE_SHELL_STATUS is the
shell's exit status, $FAKE_BUILD_STATUS images-build's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

state = Path(os.environ["FAKE_PODMAN_STATE"])
secrets = state / "secrets"
secrets.mkdir(parents=True, exist_ok=True)
args = sys.argv[1:]
with (state / "calls.log").open("a") as log:
    log.write(" ".join(args) + "\n")


def nested_podman(command: list[str]) -> int:
    """The nested podman (``podman --url=... ARGS``) of the maintained images."""
    book = state / "nested.json"
    known = json.loads(book.read_text()) if book.exists() else {}
    images, containers = known.setdefault("images", {}), known.setdefault("containers", [])
    verb, rest = command[:2], command[-1]
    status = 0
    if verb == ["image", "inspect"]:
        if rest not in images:
            print(f"Error: {rest}: image not known", file=sys.stderr)
            return 125
        print(f"{json.dumps(images[rest]['Entrypoint'])}\t{json.dumps(images[rest]['Cmd'])}")
    elif verb == ["image", "exists"]:
        status = 0 if rest in images else 1
    elif verb == ["container", "exists"]:
        status = 0 if rest in containers else 1
    elif command[0] == "run":
        if "--rm" not in command:
            containers.append(command[command.index("--name") + 1])
        status = int(os.environ.get("FAKE_SHELL_STATUS", "0"))
    elif command[0] == "commit":
        images[rest]["committed"] = True
    elif command[0] == "rm":
        known["containers"] = [c for c in containers if c != rest]
    elif command[0] == "rmi" and rest in known.get("in_use", []):
        print(f"Error: image used by 0123: image is in use by a container: {rest}",
              file=sys.stderr)  # fmt: skip
        return 2
    elif command[0] in ("rmi", "untag"):
        del images[rest]
    book.write_text(json.dumps(known))
    return status


def maintained(command: list[str]) -> int:
    """What pipglr.ops.jobimages runs in the container as user podman."""
    if command[0] == "sh":
        where = str(state / "maintained")
        local = [where if arg.endswith("/pipglr-maintained") else arg for arg in command]
        done = subprocess.run(local, input=sys.stdin.buffer.read(), check=False)
        return done.returncode
    if command[0] == "podman":
        return nested_podman(command[2:])
    if "images-list" in command:
        print('[{"name": "tools"}]' if "--json" in command else "NAME  IMAGE  STATE")
        return 0
    if "images-build" in command:
        print(f"building {' '.join(command[command.index('images-build') + 1 :]) or 'what is due'}")
        return int(os.environ.get("FAKE_BUILD_STATUS", "0"))
    return 99


if args[:1] == ["exec"] and "--env" in args:
    if not (state / "running").exists():
        sys.exit('Error: no container with name or id "pipglr" found: no such container')
    with (state / "exec.jsonl").open("a") as book:
        book.write(json.dumps(args) + "\n")
    sys.exit(maintained(args[args.index("pipglr") + 1 :]))
elif args[:2] == ["secret", "ls"]:
    print("\n".join(sorted(p.name for p in secrets.iterdir())))
elif args[:1] == ["version"]:
    print(os.environ.get("FAKE_PODMAN_VERSION", "4.3.1"))
elif args[:2] == ["secret", "create"]:
    replace = args[2] == "--replace"
    have = os.environ.get("FAKE_PODMAN_VERSION", "4.3.1").split(".")
    if replace and (int(have[0]), int(have[1])) < (4, 7):
        sys.exit("Error: unknown flag: --replace")
    name = args[3] if replace else args[2]
    if (secrets / name).exists() and not replace:
        sys.exit(f"Error: {name}: secret name in use")
    if os.environ.get("FAKE_PODMAN_FAIL_CREATE") == name and not (state / "failed").exists():
        (state / "failed").touch()
        sys.exit("Error: simulated failure writing the secret")
    (secrets / name).write_text(sys.stdin.read())
elif args[:2] == ["secret", "rm"]:
    target = secrets / args[2]
    if not target.exists():
        sys.exit(f"Error: no secret with name or id {args[2]!r}: no such secret")
    target.unlink()
elif args[:2] == ["image", "inspect"]:
    print(json.dumps(json.loads((state / "labels.json").read_text())))
elif args[:1] == ["run"] and "dump-config" in args:
    # The dumpconfig label with no runner volume yet: the effective config is the secret.
    name = args[args.index("--secret") + 1].split(",")[0]
    print((secrets / name).read_text(), end="")
elif args[:1] == ["exec"] and "storage-report" in args:
    # The evictor's report, as the guest prints it, when the container "runs".
    if not (state / "running").exists():
        sys.exit('Error: no container with name or id "pipglr" found: no such container')
    print('{"usage": {"total": 1}}' if "--json" in args else "nested storage: 1 B")
elif args[:1] == ["exec"] and "metrics-facts" in args and (state / "running").exists():
    facts = state / "metrics-facts.json"
    if not facts.exists():
        sys.exit("Error: the exporter's facts are not there")
    print(facts.read_text())
elif args[:2] == ["container", "exists"]:
    sys.exit(0 if (state / "running").exists() else 1)
elif args[:2] == ["volume", "ls"]:
    print("pipglr-storage\npipglr-cache\npipglr-runner")
elif args[:1] == ["run"] and "--detach" in args:
    # The run label: the container "runs", --privileged or not, on the secret as it is.
    (state / "running").touch()
    (state / "privileged").write_text(str("--privileged" in args))
    published = args[args.index("--publish") + 1] if "--publish" in args else ""
    (state / "published").write_text(published)
    print("0123456789abcdef")
elif args[:2] == ["container", "inspect"]:
    if not (state / "running").exists():
        sys.exit('Error: no container with name or id "pipglr" found: no such container')
    privileged = (state / "privileged").read_text() == "True"
    ports: dict[str, list[dict[str, str]]] = {}
    published = (state / "published").read_text() if (state / "published").exists() else ""
    if published:  # ADDR:PORT:CPORT/tcp, ADDR bracketed when IPv6 (podman shows it bare)
        host, port, inner = published.rsplit(":", 2)
        ports[inner] = [{"HostIp": host.strip("[]"), "HostPort": port}]
    print(json.dumps([{"State": {"Status": "running", "StartedAt": "2026-01-01"},
                       "ImageName": "localhost/pipglr:test",
                       "NetworkSettings": {"Ports": ports},
                       "HostConfig": {"Privileged": privileged,
                                      "PortBindings": ports}}]))  # fmt: skip
elif args[:1] == ["exec"] and (state / "running").exists():
    # The container's units, its mounted config.toml secret, its nested storage use.
    command = args[3:]
    if command[:1] == ["systemctl"]:
        print("active")
    elif command[:1] == ["cat"]:
        print((secrets / "config.toml").read_text(), end="")
    elif command[:1] == ["du"]:
        print(f"4096\t{command[-1]}")
    else:
        sys.exit(f"fakepodman: unsupported {args}")
else:
    sys.exit(f"fakepodman: unsupported {args}")
