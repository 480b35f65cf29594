#!/usr/bin/env python3
"""A tiny podman look-alike for unit tests of pipglr.ops.operate: secrets, labels, and a
container started by the run label (its inspect, units, config and storage use).

State lives in $FAKE_PODMAN_STATE: secrets/<name>, labels.json, calls.log. Setting
$FAKE_PODMAN_FAIL_CREATE=<name> makes the first `secret create <name>` fail (the
staging secret has another name and succeeds), to test rollbacks.
$FAKE_PODMAN_VERSION is what `podman version` says (4.3.1: no `secret create --replace`).
The run label's --publish shows in the inspect's port bindings; `metrics-facts` prints
the file metrics-facts.json of the state (absent: it fails like a guest without facts).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

state = Path(os.environ["FAKE_PODMAN_STATE"])
secrets = state / "secrets"
secrets.mkdir(parents=True, exist_ok=True)
args = sys.argv[1:]
with (state / "calls.log").open("a") as log:
    log.write(" ".join(args) + "\n")

if args[:2] == ["secret", "ls"]:
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
