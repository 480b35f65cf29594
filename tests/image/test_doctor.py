"""`pipglr doctor` on this host, for the rootful and the rootless setup."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import subprocess
import sys

import pytest

from pipglr.ops.outer import Outer

pytestmark = [pytest.mark.image]


def doctor(outer: Outer) -> tuple[int, dict[str, dict[str, object]]]:
    """Run `pipglr doctor --json` for the user the outer podman runs as."""
    user = "root"
    if outer.mode == "rootless":
        user = os.environ.get("PIPGLR_TEST_USER", "pipglr-test")
    args = [sys.executable, "-m", "pipglr.ops.cli", "--podman", shlex.join(outer.podman),
            "doctor", "--json", "--user", user]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)
    assert result.stdout.startswith("["), result.stderr
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    return result.returncode, rows


def test_doctor_verdict_on_the_test_host(outer: Outer) -> None:
    """The prepared host passes: podman, one 65539-id range (rootless; rootful is warned
    that jobs get the host's ids), devices; exit status 0."""
    code, rows = doctor(outer)
    assert code == 0, rows
    assert rows["podman"]["status"] == "ok"
    for kind in ("subuid", "subgid"):
        expected = "warn" if outer.mode == "rootful" else "ok"  # rootful: the host's ids
        assert rows[kind]["status"] == expected, rows[kind]
        if outer.mode == "rootless":
            assert "65539 ids" in str(rows[kind]["detail"]) and "one range" in str(
                rows[kind]["detail"]
            )
    assert rows["/dev/fuse"]["status"] == rows["/dev/net/tun"]["status"] == "ok"
    assert rows["user namespaces"]["status"] == "ok", rows["user namespaces"]


def test_doctor_blocks_a_user_without_subids() -> None:
    """A user with no subordinate ids is told how to add them, with exit status 1."""
    user = "nobody"
    assert pwd.getpwnam(user)
    args = [sys.executable, "-m", "pipglr.ops.cli", "doctor", "--json", "--user", user]
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert result.returncode == 1
    assert rows["subuid"]["status"] == "fail" and "usermod --add-subuids" in rows["subuid"]["fix"]
