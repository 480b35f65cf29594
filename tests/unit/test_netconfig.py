"""pipglr.guest.netconfig: the boot files of the company-network settings, in a tmp dir."""

from __future__ import annotations

import base64
import datetime as dt
import json
import stat
from pathlib import Path

import pytest

from pipglr import layout, netboot, netsettings
from pipglr.errors import ConfigError
from pipglr.guest import cli, netconfig, netroutes
from tests.unit import certmaker

PEM = netsettings.split_pem(
    "-----BEGIN CERTIFICATE-----\n"
    + base64.b64encode(b"not a real certificate, only its PEM armour" * 3).decode()
    + "\n-----END CERTIFICATE-----\n"
)[0]
ROOTS = "# system roots\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
SETTINGS = netsettings.NetworkSettings(
    mirrors=(netsettings.Mirror("docker.io", "10.199.79.1:5001", insecure=True),),
    cas=(netsettings.CA("corp", PEM),),
    proxy=netsettings.Proxy("http://proxy.corp:3128", "", ("corp.example",)),
)
AUTH = netsettings.with_login("", "registry.corp:5000", "ci", "s3cret")
#: /proc/net/fib_trie and /proc/net/if_inet6 of a container (abridged, real format).
FIB_TRIE = """Main:
  +-- 0.0.0.0/0 4 1 13
     +-- 10.199.79.0/30 2 0 1
        |-- 10.199.79.0
           /30 link UNICAST
        |-- 10.199.79.1
           /32 host LOCAL
        |-- 10.199.79.3
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 4 1 13
        |-- 10.199.79.1
           /32 host LOCAL
        |-- 192.0.2.2
           /32 host LOCAL
"""
IF_INET6 = """fd000000000000000000000000000002 04 40 00 82     eth0
00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000058a9d1fffef1e216 658 40 20 80 pglr-regauth-h
"""


def inputs(settings: netsettings.NetworkSettings = SETTINGS, **env: str) -> netconfig.Inputs:
    return netconfig.Inputs(settings, env, ("registry.corp:5000",))


def run_setup(tmp_path: Path, given: netconfig.Inputs) -> tuple[Path, str]:
    roots = tmp_path / "roots.crt"
    roots.write_text(ROOTS)
    run_dir = tmp_path / "run"
    return run_dir, netconfig.setup(given, ["10.199.79.1"], roots, run_dir)


def at(run_dir: Path, path: object) -> Path:
    return run_dir / Path(str(path)).relative_to(str(layout.NET_RUN_DIR))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_own_addresses_are_local_ipv4_and_global_ipv6() -> None:
    """hostname -I: no loopback, no link-local, no broadcast or network entries."""
    assert netroutes.local_ipv4(FIB_TRIE) == ["10.199.79.1", "192.0.2.2"]
    assert netroutes.global_ipv6(IF_INET6) == ["fd00::2"]


def test_own_addresses_reads_proc_net(tmp_path: Path) -> None:
    (tmp_path / "fib_trie").write_text(FIB_TRIE)
    assert netroutes.own_addresses(tmp_path) == ["10.199.79.1", "192.0.2.2"]
    (tmp_path / "if_inet6").write_text(IF_INET6)
    assert netroutes.own_addresses(tmp_path)[-1] == "fd00::2"


def test_load_reads_secrets_and_pid1_environment(tmp_path: Path) -> None:
    """The settings secret, the login registries (never a password), --env."""
    (tmp_path / "network").write_text(SETTINGS.to_toml())
    (tmp_path / "auth").write_text(AUTH)
    (tmp_path / "environ").write_bytes(b"container=podman\0https_proxy=http://p.corp:8080\0")
    got = netconfig.load(tmp_path / "network", tmp_path / "auth", tmp_path / "environ")
    assert got.settings == SETTINGS
    assert got.login_registries == ("registry.corp:5000",)
    assert got.environment["https_proxy"] == "http://p.corp:8080"
    assert "s3cret" not in repr(got)


def test_absent_secrets_are_empty_settings(tmp_path: Path) -> None:
    (tmp_path / "environ").write_bytes(b"")
    got = netconfig.load(tmp_path / "none", tmp_path / "none", tmp_path / "environ")
    assert got.settings.empty and got.login_registries == ()


def test_malformed_settings_are_one_config_error_line(tmp_path: Path) -> None:
    """What the unit fails on (and, through Requires=, the guard, the API, the runner)."""
    (tmp_path / "network").write_text("[[mirror]]\nregistry = 'docker.io'\n")
    with pytest.raises(ConfigError) as info:
        netconfig.read_settings(tmp_path / "network")
    assert "pipglr-network" in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "network").write_text(SETTINGS.to_toml())  # positive control
    assert netconfig.read_settings(tmp_path / "network") == SETTINGS


def test_login_keys_that_are_not_host_port_are_left_out(tmp_path: Path) -> None:
    """A hand-written docker hub key stays the runner's; nothing is opened for it."""
    auths = {
        "https://index.docker.io/v1/": {"auth": "eDp5"},
        "registry.corp:5000": {"auth": "eDp5"},
    }
    (tmp_path / "auth").write_text(json.dumps({"auths": auths}))
    assert netconfig.read_login_registries(tmp_path / "auth") == ("registry.corp:5000",)


def test_setup_writes_every_file_with_its_mode(tmp_path: Path) -> None:
    run_dir, line = run_setup(tmp_path, inputs())
    assert mode(run_dir) == 0o755
    bundle = at(run_dir, layout.CA_BUNDLE)
    assert bundle.read_text() == netboot.ca_bundle(ROOTS, SETTINGS.cas)
    assert bundle.read_text().startswith(ROOTS) and PEM in bundle.read_text()
    assert mode(bundle) == 0o644
    dropin = at(run_dir, layout.REGISTRIES_DROPIN)
    assert dropin.read_text() == netboot.registries_conf(SETTINGS.mirrors)
    assert mode(dropin) == 0o644
    for host in ("10.199.79.1:5001", "registry.corp:5000"):
        crt = run_dir / "certs.d" / host / "ca.crt"
        assert crt.read_text() == PEM and mode(crt) == 0o644, host
    proxy = at(run_dir, layout.PROXY_ENV_FILE)
    assert mode(proxy) == 0o600
    lines = proxy.read_text().splitlines()
    assert 'HTTP_PROXY="http://proxy.corp:3128"' in lines
    assert 'http_proxy="http://proxy.corp:3128"' in lines
    assert 'NO_PROXY="localhost,127.0.0.0/8,::1,10.199.79.1,corp.example"' in lines
    jobs = at(run_dir, netconfig.JOBS_FILE)
    assert mode(jobs) == 0o644
    read = netconfig.read_job_settings(jobs)
    assert read == netboot.job_settings(True, netboot.proxy_environment(
        SETTINGS.proxy, {}, ["10.199.79.1"]))  # fmt: skip
    assert read is not None and read.tls_ca_file == str(layout.CA_BUNDLE)
    assert line == (
        "network settings: 1 mirror(s) (10.199.79.1:5001 for docker.io); 1 private CA(s) "
        "(corp); 1 registry login(s); proxy http://proxy.corp:3128"
    )


def test_setup_without_settings_still_writes_bundle_proxy_file_and_jobs(tmp_path: Path) -> None:
    """The trust store links to the bundle and EnvironmentFile= names the proxy file:
    both always exist; nothing else is written."""
    run_dir, line = run_setup(tmp_path, netconfig.Inputs(netsettings.NetworkSettings(), {}, ()))
    assert at(run_dir, layout.CA_BUNDLE).read_text() == ROOTS
    assert at(run_dir, layout.PROXY_ENV_FILE).read_text() == ""
    assert not at(run_dir, layout.REGISTRIES_DROPIN).exists()
    assert not (run_dir / "certs.d").exists()
    assert netconfig.read_job_settings(at(run_dir, netconfig.JOBS_FILE)) == (
        netboot.JobSettings((), (), None)
    )
    assert line == "network settings: 0 mirror(s); 0 private CA(s); 0 registry login(s); no proxy"


def test_setup_again_removes_what_the_settings_no_longer_have(tmp_path: Path) -> None:
    run_dir, _ = run_setup(tmp_path, inputs())
    assert at(run_dir, layout.REGISTRIES_DROPIN).exists()
    run_setup(tmp_path, netconfig.Inputs(netsettings.NetworkSettings(), {}, ()))
    assert not at(run_dir, layout.REGISTRIES_DROPIN).exists()
    assert not (run_dir / "certs.d").exists()


def test_env_proxy_overrides_and_password_is_masked(tmp_path: Path) -> None:
    """--env HTTPS_PROXY (either case) wins over the secret; the summary hides its
    password, the environment file keeps it (systemd passes it on)."""
    given = inputs(https_proxy="http://ci:pa55@proxy.corp:8080")
    run_dir, line = run_setup(tmp_path, given)
    assert (
        "pa55" not in line
        and "proxy http://proxy.corp:3128 and http://ci:***@proxy.corp:8080" in line
    )
    text = at(run_dir, layout.PROXY_ENV_FILE).read_text()
    assert 'HTTPS_PROXY="http://ci:pa55@proxy.corp:8080"' in text


def test_env_proxy_without_scheme_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--env: proxy 'proxy.corp:8080' has no http"):
        run_setup(tmp_path, inputs(HTTP_PROXY="proxy.corp:8080"))
    assert not (tmp_path / "run").exists(), "bad input writes nothing"


def test_mask_userinfo_keeps_urls_without_password() -> None:
    assert netsettings.redact_url("http://p:3128") == "http://p:3128"
    assert netsettings.redact_url("https://u:pw@p:3128") == "https://u:***@p:3128"


def test_proxy_env_file_escapes_quotes() -> None:
    assert netconfig.proxy_env_file({"A": 'x"y\\z'}) == 'A="x\\"y\\\\z"\n'


def test_openings_of_inputs_are_mirror_proxy_and_login() -> None:
    assert [(o.host, o.port, o.reason) for o in inputs().openings()] == [
        ("10.199.79.1", 5001, "mirror of docker.io"),
        ("proxy.corp", 3128, "proxy (HTTP_PROXY)"),
        ("registry.corp", 5000, "registry login registry.corp:5000"),
    ]


def test_read_job_settings_absent_is_none_damaged_is_an_error(tmp_path: Path) -> None:
    assert netconfig.read_job_settings(tmp_path / "jobs.json") is None
    (tmp_path / "jobs.json").write_text("{")
    with pytest.raises(ConfigError, match="restart pipglr-network.service"):
        netconfig.read_job_settings(tmp_path / "jobs.json")


def test_certs_d_dir_matches_netsettings() -> None:
    assert netboot.certs_d_path("h:1").parent == netconfig.CERTS_D_DIR


def test_network_setup_command_fails_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> str:
        raise ConfigError("the pipglr-network secret is not TOML")

    monkeypatch.setattr(netconfig, "main", broken)
    assert cli.main(["network-setup"]) == layout.CONFIG_ERROR_STATUS
    assert capsys.readouterr().err == "pipglr: the pipglr-network secret is not TOML\n"
    monkeypatch.setattr(netconfig, "main", lambda: "network settings: fine")
    assert cli.main(["network-setup"]) == 0
    assert capsys.readouterr().out == "pipglr: network settings: fine\n"


def test_setup_writes_each_private_cas_expiry(tmp_path: Path) -> None:
    """cas.json (0644): one entry per certificate of each CA (a CA's PEM may hold two),
    with its subject, not_after in epoch seconds and SHA-256 fingerprint; one that
    does not parse (the fake PEM of these tests) is left out; no CAs: ``[]``."""
    root = certmaker.make_cert("Corp Root CA", not_after=certmaker.NOW + dt.timedelta(days=30))
    old = certmaker.make_cert("Corp Old CA", not_after=dt.datetime(2027, 1, 2, 3, 4, 5,
                                                                   tzinfo=dt.UTC))  # fmt: skip
    cas = (netsettings.CA("corp", root + old), netsettings.CA("fake", PEM))
    run_dir, _ = run_setup(tmp_path, inputs(netsettings.NetworkSettings(cas=cas)))
    path = at(run_dir, layout.CA_FACTS)
    assert mode(path) == 0o644
    facts = json.loads(path.read_text())
    assert facts == [
        {"name": "corp", "subject": "CN=Corp Root CA",
         "not_after": int((certmaker.NOW + dt.timedelta(days=30)).timestamp()),
         "fingerprint": certmaker.fingerprint(root).replace(":", "").lower()},
        {"name": "corp", "subject": "CN=Corp Old CA", "not_after": 1798859045,
         "fingerprint": certmaker.fingerprint(old).replace(":", "").lower()},
    ]  # fmt: skip
    assert facts[0]["fingerprint"] != facts[1]["fingerprint"]
    run_dir, _ = run_setup(tmp_path, netconfig.Inputs(netsettings.NetworkSettings(), {}, ()))
    assert json.loads(at(run_dir, layout.CA_FACTS).read_text()) == []
