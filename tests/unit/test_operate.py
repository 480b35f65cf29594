"""pipglr.ops.operate: safe config.toml secret replacement, on a fake podman."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from pipglr import layout
from pipglr.build import labels
from pipglr.errors import ConfigError, EngineError, UsageError
from pipglr.ops import configsecret
from pipglr.ops.lifecycle import resource_args, with_extra
from pipglr.ops.operate import Operator
from pipglr.ops.outer import Outer
from pipglr.settings import BuildSettings
from tests.unit.samples import GOOD_CONFIG

FAKE = Path(__file__).with_name("fakepodman.py")
IMAGE = "localhost/pipglr:test"
GOOD = GOOD_CONFIG


@pytest.fixture
def operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Operator:
    """An Operator whose podman keeps secrets in tmp_path."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "labels.json").write_text(json.dumps(labels.all_labels(BuildSettings())))
    monkeypatch.setenv("FAKE_PODMAN_STATE", str(state))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return Operator(Outer("rootful", (sys.executable, str(FAKE))), IMAGE)


def secret(tmp_path: Path, name: str = layout.CONFIG_SECRET) -> str:
    return (tmp_path / "state" / "secrets" / name).read_text()


def test_missing_secret_says_how_to_create_it(operator: Operator) -> None:
    """No config.toml secret: one line pointing at pipglr register."""
    with pytest.raises(ConfigError, match="pipglr register"):
        operator.read_config()


def test_replace_keeps_a_backup_and_reads_back(operator: Operator, tmp_path: Path) -> None:
    """A valid new config replaces the secret; the old text is backed up 0600."""
    operator.replace_config(GOOD)
    assert operator.read_config() == GOOD
    changed = GOOD.replace("concurrent = 2", "concurrent = 4")
    backup = operator.replace_config(changed)
    assert secret(tmp_path) == changed
    assert backup is not None and backup.read_text() == GOOD
    assert backup.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "state" / "secrets" / "pipglr-config-staging").exists()


def test_invalid_config_never_touches_the_secret(operator: Operator, tmp_path: Path) -> None:
    """Malformed TOML or a config without runners is refused before any write."""
    operator.replace_config(GOOD)
    for bad in ("concurrent = \n", "concurrent = 2\n"):
        with pytest.raises(ConfigError):
            operator.replace_config(bad)
    assert secret(tmp_path) == GOOD


def test_failed_write_puts_the_old_secret_back(
    operator: Operator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If podman fails to create the new secret, the previous one is restored."""
    operator.replace_config(GOOD)
    monkeypatch.setenv("FAKE_PODMAN_FAIL_CREATE", layout.CONFIG_SECRET)
    with pytest.raises(EngineError, match="previous secret is back"):
        operator.replace_config(GOOD.replace("concurrent = 2", "concurrent = 9"))
    monkeypatch.delenv("FAKE_PODMAN_FAIL_CREATE")
    assert secret(tmp_path) == GOOD


def test_label_args_come_from_the_image(operator: Operator) -> None:
    """Label commands are read from the image's labels, not typed again."""
    assert operator.label_args("dumpconfig") == labels.argv("dumpconfig", IMAGE)[1:]


def test_resource_args_go_before_the_image() -> None:
    """up/quadlet extras are options of podman run, so they precede the image."""
    args = labels.argv("run", IMAGE)[1:]
    extra = resource_args("1", "1g", 100, ["/data:/data"], ["A=b"])
    combined = with_extra(args, IMAGE, extra)
    assert combined[-1] == IMAGE
    assert combined[-1 - len(extra) : -1] == [
        "--cpus", "1", "--memory", "1g", "--pids-limit", "100",
        "--volume", "/data:/data", "--env", "A=b",
    ]  # fmt: skip


@pytest.mark.parametrize("token", ["", "  \n"])
def test_register_refuses_a_missing_token(operator: Operator, tmp_path: Path, token: str) -> None:
    """An empty token is a usage error before any secret is touched."""
    with pytest.raises(UsageError, match="empty token"):
        operator.register(token)
    assert not (tmp_path / "state" / "secrets" / layout.TOKEN_SECRET).exists()


def test_backups_within_one_second_are_all_kept(operator: Operator) -> None:
    """Three replacements in a row (well within a second) keep three distinct backups:
    the original and both intermediate configs."""
    versions = [GOOD.replace("concurrent = 2", f"concurrent = {n}") for n in (1, 2, 3, 4)]
    operator.replace_config(versions[0])
    backups = [operator.replace_config(text) for text in versions[1:]]
    assert all(b is not None for b in backups)
    assert len({str(b) for b in backups}) == 3, backups
    assert [b.read_text() for b in backups if b] == versions[:3]


def test_storage_report_runs_the_guest_report_as_the_podman_user(
    operator: Operator, tmp_path: Path
) -> None:
    with pytest.raises(EngineError, match=r"^no storage report from pipglr \(Error: no container"):
        operator.storage_report(False)
    (tmp_path / "state" / "running").touch()
    assert json.loads(operator.storage_report(True)) == {"usage": {"total": 1}}
    assert operator.storage_report(False) == "nested storage: 1 B"
    calls = (tmp_path / "state" / "calls.log").read_text().splitlines()
    assert calls[-2] == (
        f"exec -i --user podman pipglr {layout.PYTHON} -m pipglr.guest storage-report --json"
    )


def secret_calls(tmp_path: Path) -> list[str]:
    calls = (tmp_path / "state" / "calls.log").read_text().splitlines()
    return [c for c in calls if c.startswith("secret ") and layout.CONFIG_SECRET in c]


@pytest.mark.parametrize(
    ("version", "swap"),
    [
        ("4.3.1", [f"secret rm {layout.CONFIG_SECRET}", f"secret create {layout.CONFIG_SECRET} -"]),
        ("4.7.0", [f"secret create --replace {layout.CONFIG_SECRET} -"]),
        ("5.4.2", [f"secret create --replace {layout.CONFIG_SECRET} -"]),
    ],
)
def test_podman_with_replace_swaps_the_secret_in_one_step(
    operator: Operator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str,
    swap: list[str],
) -> None:  # fmt: skip
    """podman >= 4.7 replaces the secret in one call (never absent); older podman
    removes and re-creates it. Either way the new text is in place, the old backed up."""
    operator.replace_config(GOOD)
    monkeypatch.setenv("FAKE_PODMAN_VERSION", version)
    (tmp_path / "state" / "calls.log").write_text("")
    changed = GOOD.replace("concurrent = 2", "concurrent = 5")
    backup = operator.replace_config(changed)
    assert secret_calls(tmp_path) == swap
    assert secret(tmp_path) == changed and backup is not None and backup.read_text() == GOOD


def test_failed_replace_leaves_the_previous_secret(
    operator: Operator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --replace, a failed write never removed anything: the old text stays."""
    operator.replace_config(GOOD)
    monkeypatch.setenv("FAKE_PODMAN_VERSION", "5.4.2")
    monkeypatch.setenv("FAKE_PODMAN_FAIL_CREATE", layout.CONFIG_SECRET)
    with pytest.raises(EngineError, match="the previous secret is unchanged"):
        operator.replace_config(GOOD.replace("concurrent = 2", "concurrent = 9"))
    assert secret(tmp_path) == GOOD


def test_up_mounts_the_network_secrets_that_exist(operator: Operator, tmp_path: Path) -> None:
    """`up` adds the --secret options of the optional secrets stored, before the image."""
    operator.replace_config(GOOD)
    operator.up()
    first = [c for c in (tmp_path / "state" / "calls.log").read_text().splitlines()
             if c.startswith("run --detach")]  # fmt: skip
    assert layout.NETWORK_SECRET not in first[-1], "none stored: none mounted"
    operator.outer.run("secret", "create", layout.NETWORK_SECRET, "-", input="# x\n")
    operator.outer.run("secret", "create", layout.REGISTRY_AUTH_SECRET, "-", input="{}")
    operator.up(env=["HTTP_PROXY=http://proxy:3128"])
    started = [c for c in (tmp_path / "state" / "calls.log").read_text().splitlines()
               if c.startswith("run --detach")][-1].split()  # fmt: skip
    mounts = labels.optional_secret_args([layout.NETWORK_SECRET, layout.REGISTRY_AUTH_SECRET])
    assert started[-1] == IMAGE
    at = started.index(mounts[1])
    assert started[at - 1 : at + 3] == mounts
    assert started[-3:-1] == ["--env", "HTTP_PROXY=http://proxy:3128"]


def test_status_reports_the_network_and_what_the_guard_opened(
    operator: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`egress_opened` from the guard's file in the container (absent: no field);
    `network` from the secrets the container's inspect shows mounted."""
    operator.replace_config(GOOD)
    operator.up()
    opened = [{"host": "m.corp", "port": 5000, "reason": "mirror of docker.io",
               "addresses": ["10.1.2.3"]}]  # fmt: skip
    real_exec = Outer.exec
    files: dict[str, str] = {}

    def exec_(self: Outer, container: str, *args: str, **kw: Any) -> CompletedProcess[str]:
        if args == ("cat", str(layout.EGRESS_OPENED)):
            text = files.get(args[1])
            return CompletedProcess(list(args), 0 if text else 1, text or "", "No such file")
        return real_exec(self, container, *args, **kw)

    monkeypatch.setattr(Outer, "exec", exec_)
    report = operator.status()
    assert report["network"] == "defaults (no network secrets mounted)"
    assert "egress_opened" not in report and report["runners"] == 1
    files[str(layout.EGRESS_OPENED)] = json.dumps(opened)
    assert operator.status()["egress_opened"] == ["m.corp:5000 (mirror of docker.io; 10.1.2.3)"]


def test_backups_rotate_to_the_newest_few_per_secret(tmp_path: Path) -> None:
    """Failed before issue 21 (every backup, every token, kept forever): a new backup
    leaves the newest BACKUPS_KEPT of its secret. Other secrets' backups, kept rejected
    edits and unrelated files are the control: untouched."""
    directory = tmp_path / "backups"
    directory.mkdir()
    old = [f"config.toml.202401{day:02d}-120000" for day in range(1, 13)]
    same_second = ["config.toml.20240113-120000", "config.toml.20240113-120000.2",
                   "config.toml.20240113-120000.10"]  # fmt: skip
    others = ["pipglr-network.20230101-000000", "config.toml-rejected.20230101-000000",
              "config.toml.notes", "README"]  # fmt: skip
    for name in [*old, *same_second, *others]:
        (directory / name).write_text(name)
    new = configsecret.write_backup(directory, "newest")
    kept = configsecret.backups_of(directory, layout.CONFIG_SECRET)
    assert len(kept) == configsecret.BACKUPS_KEPT == 10
    assert kept[-1] == new and new.read_text() == "newest"
    # Oldest first: days 7..12, then the same second in order .0, .2, .10, then the new.
    assert [p.name for p in kept[:-1]] == [*old[6:], *same_second]
    assert all((directory / name).exists() for name in others)
    assert not any((directory / name).exists() for name in old[:6])


def test_the_new_backup_is_kept_even_when_the_clock_went_back(tmp_path: Path) -> None:
    """A backup written with a clock set back sorts oldest; it is still kept."""
    for year in range(2090, 2092):
        (tmp_path / f"config.toml.{year}0101-000000").write_text("future")
    new = configsecret.write_backup(tmp_path, "now", keep=2)
    assert new.exists() and len(configsecret.backups_of(tmp_path, "config.toml")) == 3
