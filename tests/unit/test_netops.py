"""pipglr.ops.netops: the network secrets on a fake podman; nothing written on bad input."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipglr import layout, netsettings
from pipglr.errors import EngineError, UsageError
from pipglr.netsettings import NetworkSettings
from pipglr.ops import configsecret, doctor, netops
from pipglr.ops.outer import Outer
from tests.unit.certmaker import NOW, fingerprint, make_cert

IMAGE = "localhost/pipglr:test"
NET = layout.NETWORK_SECRET
AUTH = layout.REGISTRY_AUTH_SECRET


@dataclass(frozen=True)
class FakeOuter(Outer):
    """A podman keeping secrets in a dict; `run --rm ... cat` prints the mounted one."""

    secrets: dict[str, str] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    fail_create: set[str] = field(default_factory=set)

    def run(
        self,
        *args: str,
        check: bool = True,
        cwd: Path | None = None,
        input: bytes | str | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        out, err, status = "", "", 0
        if args[:2] == ("secret", "ls"):
            out = "\n".join(sorted(self.secrets))
        elif args[:2] == ("secret", "create"):
            replace = args[2] == "--replace"
            name = args[3] if replace else args[2]
            if name in self.fail_create:
                self.fail_create.discard(name)
                err, status = "Error: simulated failure", 125
            elif name in self.secrets and not replace:
                err, status = f"Error: {name}: secret name in use", 125
            else:
                self.secrets[name] = str(input)
        elif args[:2] == ("secret", "rm"):
            if self.secrets.pop(args[2], None) is None:
                err, status = "Error: no such secret", 1
        elif args[:2] == ("run", "--rm") and "cat" in args:
            name = args[args.index("--secret") + 1].split(",")[0]
            if args[-1] != f"/run/secrets/{name}" or name not in self.secrets:
                err, status = "Error: no secret", 125
            else:
                out = self.secrets[name]
        else:
            err, status = f"fake: unsupported {args}", 125
        if check and status:
            raise EngineError(err)
        return subprocess.CompletedProcess(list(args), status, out, err)

    def writes(self) -> list[list[str]]:
        """The calls that change a real (not staging) secret."""
        return [c for c in self.calls if c[:2] in (["secret", "create"], ["secret", "rm"])
                and not c[-1].endswith("-staging") and not c[-2].endswith("-staging")]  # fmt: skip


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeOuter:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(doctor, "podman_version", lambda podman: (4, 3, 1))
    return FakeOuter("rootless", ("podman",))


@pytest.fixture
def ops(fake: FakeOuter) -> netops.NetworkOps:
    return netops.NetworkOps.of(fake, IMAGE)


def backups(tmp_path: Path) -> list[Path]:
    directory = tmp_path / "data" / "pipglr" / "backups"
    return sorted(directory.iterdir()) if directory.exists() else []


def test_reading_goes_through_a_throwaway_container(
    ops: netops.NetworkOps, fake: FakeOuter
) -> None:
    assert ops.store.read(NET) == "" and ops.settings() == NetworkSettings()
    assert not any(c[0] == "run" for c in fake.calls), "an absent secret is not read"
    fake.secrets[NET] = "# empty\n"
    assert ops.store.read(NET) == "# empty\n"
    assert fake.calls[-1] == [
        "run", "--rm", "--pull", "never", "--network", "none", "--user", "0",
        "--secret", f"{NET},mode=0400", "--entrypoint", "cat", IMAGE, f"/run/secrets/{NET}",
    ]  # fmt: skip


def test_a_good_mirror_add_writes_the_secret_once(
    ops: netops.NetworkOps, fake: FakeOuter, tmp_path: Path
) -> None:
    said = ops.mirror_add("docker.io", "Mirror.Example.com:5000")
    assert said == (
        "mirror mirror.example.com:5000 of docker.io stored; "
        "restart pipglr to apply: pipglr down && pipglr up"
    )
    assert fake.writes() == [["secret", "create", NET, "-"]]
    assert NetworkSettings.from_toml(fake.secrets[NET]).mirrors == (
        netsettings.Mirror("docker.io", "mirror.example.com:5000"),
    )
    assert backups(tmp_path) == [], "nothing to back up the first time"
    assert ops.mirror_list() == ["docker.io  mirror.example.com:5000"]


def test_a_second_change_backs_up_the_old_text(
    ops: netops.NetworkOps, fake: FakeOuter, tmp_path: Path
) -> None:
    ops.mirror_add("docker.io", "m1:5000")
    first = fake.secrets[NET]
    said = ops.mirror_add("quay.io", "m2", insecure=True)
    [backup] = backups(tmp_path)
    assert backup.name.startswith(f"{NET}.") and backup.read_text() == first
    assert backup.stat().st_mode & 0o777 == 0o600
    assert f"(backup: {backup})" in said and "insecure" in said
    assert ops.mirror_list() == ["docker.io  m1:5000", "quay.io  m2  insecure"]
    # podman 4.3: the old secret is removed and the new one created.
    assert fake.writes()[-2:] == [["secret", "rm", NET], ["secret", "create", NET, "-"]]


def test_network_secret_backups_rotate(
    ops: netops.NetworkOps, fake: FakeOuter, tmp_path: Path
) -> None:
    """Failed before issue 21 (all 11 backups kept): twelve changes keep the newest
    BACKUPS_KEPT backups of the network secret; the first texts are gone."""
    texts = []
    for n in range(12):
        ops.mirror_add(f"r{n}.example.com", "m:5000")
        texts.append(fake.secrets[NET])
    kept = backups(tmp_path)
    assert len(kept) == 10 == configsecret.BACKUPS_KEPT
    assert {p.read_text() for p in kept} == set(texts[1:-1])


def test_podman_47_replaces_in_one_step(
    ops: netops.NetworkOps, fake: FakeOuter, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops.mirror_add("docker.io", "m1")
    monkeypatch.setattr(doctor, "podman_version", lambda podman: (4, 7, 0))
    fake.calls.clear()
    ops.mirror_add("docker.io", "m2")
    assert fake.writes() == [["secret", "create", "--replace", NET, "-"]]
    assert len(ops.settings().mirrors) == 2


def test_a_failed_write_puts_the_old_secret_back(ops: netops.NetworkOps, fake: FakeOuter) -> None:
    ops.mirror_add("docker.io", "m1")
    old = fake.secrets[NET]
    fake.fail_create.add(NET)
    with pytest.raises(EngineError, match="previous secret is back in place"):
        ops.mirror_add("docker.io", "m2")
    assert fake.secrets[NET] == old


def test_podman_refusing_the_staged_text_touches_nothing(
    ops: netops.NetworkOps, fake: FakeOuter
) -> None:
    ops.mirror_add("docker.io", "m1")
    old, count = fake.secrets[NET], len(fake.writes())
    fake.fail_create.add(f"{NET}-staging")
    with pytest.raises(EngineError, match=f"podman refused the new {NET} secret"):
        ops.mirror_add("docker.io", "m2")
    assert fake.secrets[NET] == old and len(fake.writes()) == count


def test_removing_the_last_setting_removes_the_secret(
    ops: netops.NetworkOps, fake: FakeOuter, tmp_path: Path
) -> None:
    ops.mirror_add("docker.io", "m1")
    said = ops.mirror_remove("docker.io")
    assert NET not in fake.secrets and said.endswith("pipglr down && pipglr up")
    assert len(backups(tmp_path)) == 1
    with pytest.raises(UsageError, match="no mirror for docker.io"):
        ops.mirror_remove("docker.io")


def bad_inputs(tmp_path: Path) -> dict[str, tuple[str | None, ...]]:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    expired = tmp_path / "expired.pem"
    expired.write_text(make_cert(not_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)))
    return {
        "garbage": ("ca_add", str(garbage)),
        "expired": ("ca_add", str(expired)),
        "missing": ("ca_add", str(tmp_path / "nope.pem")),
        "mirror-url": ("mirror_add", "docker.io", "https://mirror.example.com"),
        "mirror-path": ("mirror_add", "docker.io", "mirror.example.com/v2"),
        "mirror-port": ("mirror_add", "docker.io", "mirror:99999"),
        "registry": ("mirror_add", "docker io", "mirror"),
        "self": ("mirror_add", "docker.io", "docker.io"),
        "proxy-scheme": ("proxy_set", "proxy.example.com:3128"),
        "proxy-path": ("proxy_set", "http://proxy:3128/x"),
        "no-proxy": ("proxy_set", "http://proxy:3128", None, None, "a b"),
        "login-registry": ("login", "https://r.example.com", "ci", "pw"),
        "login-user": ("login", "r.example.com", "a:b", "pw"),
        "login-password": ("login", "r.example.com", "ci", ""),
    }


@pytest.mark.parametrize(
    "case",
    ["garbage", "expired", "missing", "mirror-url", "mirror-path", "mirror-port", "registry",
     "self", "proxy-scheme", "proxy-path", "no-proxy", "login-registry", "login-user",
     "login-password"],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(
    ops: netops.NetworkOps, fake: FakeOuter, tmp_path: Path, case: str
) -> None:
    method, *args = bad_inputs(tmp_path)[case]
    with pytest.raises(UsageError) as caught:
        getattr(ops, str(method))(*args)
    assert "\n" not in str(caught.value)
    assert fake.writes() == [] and not any(c[-1].endswith("-staging") for c in fake.calls)
    assert fake.secrets == {} and backups(tmp_path) == []


def test_positive_controls_of_the_bad_inputs(
    ops: netops.NetworkOps, fake: FakeOuter, tmp_path: Path
) -> None:
    """The same commands with good values write: the refusals above are the values'."""
    good = tmp_path / "corp root.pem"
    good.write_text(make_cert())
    ops.ca_add(str(good))
    ops.mirror_add("docker.io", "mirror.example.com")
    ops.proxy_set("http://proxy:3128", None, None, "a,b")
    ops.login("r.example.com", "ci", "pw")
    creates = [c[2] for c in fake.writes() if c[1] == "create"]
    assert creates == [NET, NET, NET, AUTH], "each command wrote its secret once"
    assert set(fake.secrets) == {NET, AUTH}


def test_ca_add_list_remove(ops: netops.NetworkOps, fake: FakeOuter, tmp_path: Path) -> None:
    pem = make_cert("Corp Root")
    path = tmp_path / "Corp Root (2026).crt"
    path.write_text("comment\n" + pem)
    said = ops.ca_add(str(path))
    assert said.startswith("CA Corp-Root-2026 stored: CN=Corp Root, expires ")
    [ca] = ops.settings().cas
    assert ca.pem == pem, "stored as the normalized PEM, without the comment"
    [line] = ops.ca_list(now=NOW)
    assert line.startswith("Corp-Root-2026  CN=Corp Root  expires ")
    assert line.endswith(f"sha256 {fingerprint(pem)}")
    with pytest.raises(UsageError, match="a CA named 'Corp-Root-2026' exists"):
        ops.ca_add(str(path))
    ops.ca_add(str(path), "second")
    assert [c.name for c in ops.settings().cas] == ["Corp-Root-2026", "second"]
    later = ops.ca_list(now=NOW + dt.timedelta(days=9000))
    assert all(" EXPIRED " in line for line in later)
    ops.ca_remove("second")
    with pytest.raises(UsageError, match="no CA named 'second'"):
        ops.ca_remove("second")
    with pytest.raises(UsageError, match="CA name"):
        ops.ca_add(str(path), "bad/name")


def test_ca_add_of_a_leaf_says_so(ops: netops.NetworkOps, tmp_path: Path) -> None:
    path = tmp_path / "server.pem"
    path.write_text(make_cert("server.corp", ca=False))
    assert "(not a CA certificate: trusted as it is)" in ops.ca_add(str(path))


def test_proxy_set_show_clear(ops: netops.NetworkOps, fake: FakeOuter) -> None:
    assert ops.proxy_show() == []
    ops.proxy_set("http://user:pa55@proxy:3128")
    assert ops.proxy_show() == ["http http://user:***@proxy:3128",
                                "https http://user:***@proxy:3128"]  # fmt: skip
    assert "pa55" in fake.secrets[NET], "the secret holds the real URL"
    said = ops.proxy_set(https="https://secure:443", no_proxy="corp.lan, .internal")
    assert "pa55" not in said
    assert ops.settings().proxy == netsettings.Proxy(
        "http://user:pa55@proxy:3128", "https://secure:443", ("corp.lan", ".internal")
    )
    ops.proxy_set(http="")
    assert ops.settings().proxy.http == ""
    with pytest.raises(UsageError, match="no proxy URL left"):
        ops.proxy_set(https="")
    with pytest.raises(UsageError, match="give the proxy"):
        ops.proxy_set()
    assert ops.proxy_clear().startswith("proxy removed")
    assert NET not in fake.secrets
    assert ops.proxy_clear() == "no proxy stored: nothing changed"


def test_registry_login_list_logout(
    ops: netops.NetworkOps, fake: FakeOuter, tmp_path: Path
) -> None:
    said = ops.login("Registry.Example.com", "ci", "first-pw")
    assert said.startswith("login for registry.example.com as ci stored;")
    ops.login("registry.example.com", "ci", "second-pw")
    ops.login("other:5000", "bot", "third-pw")
    listed = ops.login_list()
    assert listed == ["other:5000  bot", "registry.example.com  ci"]
    assert not any("pw" in line for line in listed)
    [backup, *_] = backups(tmp_path)
    assert backup.name.startswith(f"{AUTH}.") and backup.stat().st_mode & 0o777 == 0o600
    assert "Y2k6Zmlyc3QtcHc=" in backup.read_text(), "the old login (ci:first-pw) kept"
    ops.logout("other:5000")
    assert AUTH in fake.secrets
    ops.logout("registry.example.com")
    assert AUTH not in fake.secrets and ops.login_list() == []
    with pytest.raises(UsageError, match="no login for registry.example.com"):
        ops.logout("registry.example.com")


def test_status_fields() -> None:
    info = {"Config": {"Secrets": [{"Name": "config.toml"}, {"Name": AUTH}, {"Name": NET}]}}
    egress = json.dumps([{"host": "mirror.corp", "port": 5000, "reason": "mirror of docker.io",
                          "addresses": ["10.1.2.3", "10.1.2.4"]}])  # fmt: skip
    assert netops.status_fields(info, egress) == {
        "network": [NET, AUTH],
        "egress_opened": ["mirror.corp:5000 (mirror of docker.io; 10.1.2.3, 10.1.2.4)"],
    }
    assert netops.status_fields({}, None) == {"network": "defaults (no network secrets mounted)"}
    assert netops.status_fields({}, "concurrent = 1")["egress_opened"] == [
        f"unreadable {layout.EGRESS_OPENED} (JSONDecodeError)"
    ]


def test_doctor_findings(ops: netops.NetworkOps, fake: FakeOuter, tmp_path: Path) -> None:
    assert netops.doctor_findings(ops) == [], "no network secret: no rows"
    now = dt.datetime.now(dt.UTC)
    soon = tmp_path / "soon.pem"
    soon.write_text(make_cert("Soon", not_after=now + dt.timedelta(days=10)))
    ops.ca_add(str(soon))
    ops.mirror_add("docker.io", "up.example.com")
    ops.mirror_add("quay.io", "down.example.com:5000")
    asked: list[tuple[str, int, float]] = []

    def reach(host: str, port: int, timeout: float) -> str | None:
        asked.append((host, port, timeout))
        return None if host.startswith("up") else "Connection refused"

    rows = netops.doctor_findings(ops, now=now, reach=reach)
    assert [(r.check, r.status) for r in rows] == [
        ("CA soon", doctor.WARN),
        ("mirror up.example.com", doctor.OK),
        ("mirror down.example.com:5000", doctor.WARN),
    ]
    assert asked == [("up.example.com", 443, 3.0), ("down.example.com", 5000, 3.0)]
    assert "pipglr mirror remove quay.io" in rows[2].fix
    assert "Connection refused" in rows[2].detail
    fake.secrets[NET] = "not = [toml"
    [row] = netops.doctor_findings(ops, reach=reach)
    assert row.status == doctor.WARN and "not checked" in row.detail
