"""The test hosts' bridge pin: only a bridge whose MAC is not yet set by hand is pinned,
to the MAC it has (tests/harness/bridgepin.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import bridgepin


def fake_bridge(tmp_path: Path, assign_type: str, mac: str = "b6:e7:cb:4d:63:a1") -> Path:
    device = tmp_path / "podman0"
    device.mkdir()
    (device / "addr_assign_type").write_text(f"{assign_type}\n")
    (device / "address").write_text(f"{mac}\n")
    return tmp_path


@pytest.fixture
def ip_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(bridgepin.subprocess, "run", run)
    return calls


def test_a_bridge_following_its_ports_is_pinned_to_its_current_mac(
    tmp_path: Path, ip_calls: list[list[str]]
) -> None:
    """addr_assign_type 1 (random, follows the lowest port): set to the MAC it has."""
    sys_net = fake_bridge(tmp_path, "1")
    assert bridgepin.pin_once(sys_net=sys_net) == "b6:e7:cb:4d:63:a1"
    assert ip_calls == [["ip", "link", "set", "dev", "podman0", "address", "b6:e7:cb:4d:63:a1"]]


def test_a_pinned_or_missing_bridge_is_left_alone(
    tmp_path: Path, ip_calls: list[list[str]]
) -> None:
    """addr_assign_type 3 (set by hand) or no bridge at all: nothing is run."""
    assert bridgepin.pin_once(sys_net=fake_bridge(tmp_path, "3")) is None
    assert bridgepin.pin_once(sys_net=tmp_path / "none") is None
    assert ip_calls == []
