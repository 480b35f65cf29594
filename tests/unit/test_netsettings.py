"""pipglr.netsettings: the company-network model and what the image derives from it."""

from __future__ import annotations

import base64
import json
import tomllib

import pytest

from pipglr import layout, netboot, netsettings
from pipglr.errors import ConfigError, UsageError
from pipglr.netboot import Opening
from pipglr.netsettings import CA, Mirror, NetworkSettings, Proxy
from tests.unit.certmaker import make_cert

PEM = make_cert()
FULL = NetworkSettings(
    mirrors=(
        Mirror("docker.io", "mirror.example.com:5000"),
        Mirror("docker.io", "10.1.2.3", insecure=True),
        Mirror("quay.io", "[fd00::5]:8443"),
    ),
    cas=(CA("corp", PEM), CA("other", make_cert("Other"))),
    proxy=Proxy("http://proxy.example.com:3128", "https://proxy.example.com", ("corp.lan",)),
)


def test_the_document_round_trips() -> None:
    text = FULL.to_toml()
    assert NetworkSettings.from_toml(text) == FULL
    assert NetworkSettings.from_toml(NetworkSettings().to_toml()) == NetworkSettings()
    assert NetworkSettings().empty and not FULL.empty
    raw = tomllib.loads(text)
    assert set(raw) == {"proxy", "mirror", "ca"}
    assert raw["mirror"][1] == {"registry": "docker.io", "location": "10.1.2.3", "insecure": True}
    assert raw["ca"][0]["pem"] == PEM


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("mirror = [", "is not TOML"),
        ('[[mirror]]\nregistry = "docker.io"\n', "lacks 'location'"),
        ('[[mirror]]\nregistry = "docker.io"\nlocation = "m/v2"\n', "not host[:port]"),
        ('[proxy]\nhttp = "proxy:3128"\n', "no http:// or https:// scheme"),
        ('[[ca]]\nname = "x"\npem = "nothing"\n', "no PEM certificate"),
        ('[[ca]]\nname = "a b"\npem = "nothing"\n', "CA name"),
        ('mirror = "docker.io"\n', "an array of tables"),
    ],
)
def test_a_bad_document_is_one_config_error(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        NetworkSettings.from_toml(text)
    message = str(caught.value)
    assert needle in message and layout.NETWORK_SECRET in message and "\n" not in message


def test_editing_the_settings() -> None:
    base = NetworkSettings()
    one = base.with_mirror(Mirror("docker.io", "m:5000"))
    again = one.with_mirror(Mirror("docker.io", "m:5000", insecure=True))
    assert again.mirrors == (Mirror("docker.io", "m:5000", True),)
    assert one.without_mirrors("docker.io") == base
    with pytest.raises(UsageError, match="no mirror for quay.io"):
        one.without_mirrors("quay.io")
    with_ca = base.with_ca(CA("corp", PEM))
    with pytest.raises(UsageError, match="a CA named 'corp' exists"):
        with_ca.with_ca(CA("corp", PEM))
    assert with_ca.without_ca("corp") == base
    with pytest.raises(UsageError, match="no CA named 'x'"):
        with_ca.without_ca("x")


def test_registries_conf_puts_mirror_keys_inside_their_mirror_tables() -> None:
    text = netboot.registries_conf(FULL.mirrors)
    assert tomllib.loads(text) == {
        "registry": [
            {
                "prefix": "docker.io",
                "location": "docker.io",
                "mirror": [
                    {"location": "mirror.example.com:5000", "insecure": False},
                    {"location": "10.1.2.3", "insecure": True},
                ],
            },
            {
                "prefix": "quay.io",
                "location": "quay.io",
                "mirror": [{"location": "[fd00::5]:8443", "insecure": False}],
            },
        ]
    }
    assert tomllib.loads(netboot.registries_conf([])) == {}


def test_ca_bundle_appends_the_private_cas() -> None:
    bundle = netboot.ca_bundle("SYSTEM ROOTS", FULL.cas)
    assert bundle.startswith("SYSTEM ROOTS\n# pipglr CA corp\n" + PEM)
    assert bundle.count("BEGIN CERTIFICATE") == 2
    assert netboot.ca_bundle("", []) == ""


def test_proxy_environment_from_the_secret_both_cases() -> None:
    env = netboot.proxy_environment(FULL.proxy, {}, ["10.0.2.100"])
    assert env["HTTP_PROXY"] == env["http_proxy"] == "http://proxy.example.com:3128"
    assert env["HTTPS_PROXY"] == env["https_proxy"] == "https://proxy.example.com"
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.0/8,::1,10.0.2.100,corp.lan"


def test_proxy_environment_overrides_of_either_case_win() -> None:
    overrides = {"http_proxy": "http://other:8080", "NO_PROXY": "a.lan, b.lan"}
    env = netboot.proxy_environment(FULL.proxy, overrides, [])
    assert env["HTTP_PROXY"] == "http://other:8080"
    assert env["HTTPS_PROXY"] == "https://proxy.example.com"
    assert env["NO_PROXY"] == "localhost,127.0.0.0/8,::1,a.lan,b.lan"
    # An empty override drops that proxy; none left: no variables at all.
    dropped = netboot.proxy_environment(FULL.proxy, {"HTTP_PROXY": "", "HTTPS_PROXY": ""}, [])
    assert dropped == {}
    assert netboot.proxy_environment(Proxy(), {}, ["10.0.0.1"]) == {}
    with pytest.raises(UsageError, match="no http:// or https:// scheme"):
        netboot.proxy_environment(Proxy(), {"HTTPS_PROXY": "proxy:3128"}, [])


def test_openings_use_default_ports_and_say_why() -> None:
    env = netboot.proxy_environment(FULL.proxy, {}, [])
    found = netboot.openings(FULL, env, ["registry.example.com", "mirror.example.com:5000"])
    assert found == [
        Opening("mirror.example.com", 5000, "mirror of docker.io"),
        Opening("10.1.2.3", 443, "mirror of docker.io"),
        Opening("fd00::5", 8443, "mirror of quay.io"),
        Opening("proxy.example.com", 3128, "proxy (HTTP_PROXY)"),
        Opening("proxy.example.com", 443, "proxy (HTTPS_PROXY)"),
        Opening("registry.example.com", 443, "registry login registry.example.com"),
    ]
    plain = netboot.openings(NetworkSettings(), {"HTTP_PROXY": "http://p"}, [])
    assert plain == [Opening("p", 80, "proxy (HTTP_PROXY)")]


@pytest.mark.parametrize(
    ("value", "normalized"),
    [("Mirror.Example.com", "mirror.example.com"), ("m:5000", "m:5000"),
     ("10.0.0.1:80", "10.0.0.1:80"), ("[FD00::1]:5000", "[fd00::1]:5000")],
)  # fmt: skip
def test_check_host_port_accepts_and_normalizes(value: str, normalized: str) -> None:
    assert netsettings.check_host_port(value) == normalized


@pytest.mark.parametrize(
    "value",
    ["https://m.example.com", "m.example.com/path", "m:0", "m:70000", "m:x", "", "[zz]:1",
     "[fd00::1", "a b"],
)  # fmt: skip
def test_check_host_port_refuses_in_one_line(value: str) -> None:
    with pytest.raises(UsageError) as caught:
        netsettings.check_host_port(value)
    assert "\n" not in str(caught.value) and repr(value) in str(caught.value)


@pytest.mark.parametrize(
    ("value", "needle"),
    [("proxy.example.com:3128", "no http:// or https:// scheme"),
     ("socks5://p:1080", "no http:// or https:// scheme"),
     ("http://p:99999", "port must be"),
     ("http://p:3128/path", "no path"),
     ("http://", "no path")],
)  # fmt: skip
def test_check_proxy_url_refuses_in_one_line(value: str, needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        netsettings.check_proxy_url(value)
    assert needle in str(caught.value) and "\n" not in str(caught.value)
    assert netsettings.check_proxy_url("http://user:pw@p:3128/") == "http://user:pw@p:3128"


def test_check_name() -> None:
    assert netsettings.check_name("corp-root_2.pem") == "corp-root_2.pem"
    for bad in ("", "-x", "a/b", "a b", "x" * 65):
        with pytest.raises(UsageError, match="CA name"):
            netsettings.check_name(bad)


def test_split_pem_normalizes_blocks() -> None:
    wrapped = PEM.replace("\n", "\r\n")
    assert netsettings.split_pem("junk\n" + wrapped + PEM) == [PEM, PEM]


def test_logins_never_return_passwords() -> None:
    text = netsettings.with_login("", "Registry.Example.com", "ci", "s3cret-pw")
    text = netsettings.with_login(text, "other:5000", "bot", "pw2")
    assert netsettings.logins(text) == {"registry.example.com": "ci", "other:5000": "bot"}
    assert "s3cret-pw" not in repr(netsettings.logins(text))
    token = json.loads(text)["auths"]["registry.example.com"]["auth"]
    assert base64.b64decode(token).decode() == "ci:s3cret-pw"
    gone = netsettings.without_login(text, "other:5000")
    assert netsettings.logins(gone) == {"registry.example.com": "ci"}
    with pytest.raises(UsageError, match="no login for other:5000"):
        netsettings.without_login(gone, "other:5000")
    assert netsettings.logins("") == {}


@pytest.mark.parametrize(
    ("user", "password", "needle"),
    [("", "pw", "user name"), ("a:b", "pw", "user name"), ("ci", "", "empty password")],
)
def test_with_login_refuses_bad_credentials(user: str, password: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        netsettings.with_login("", "r.example.com", user, password)


@pytest.mark.parametrize("text", ["{", '{"auths": []}', "[]"])
def test_a_damaged_login_secret_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=layout.REGISTRY_AUTH_SECRET):
        netsettings.logins(text)


def test_job_settings_and_certs_d() -> None:
    env = {"HTTP_PROXY": "http://p:3128"}
    jobs = netboot.job_settings(True, env)
    assert "HTTP_PROXY=http://p:3128" in jobs.environment
    assert f"SSL_CERT_FILE={layout.JOB_CA_BUNDLE}" in jobs.environment
    assert jobs.volumes == (f"{layout.CA_BUNDLE}:{layout.JOB_CA_BUNDLE}:ro",)
    assert jobs.tls_ca_file == str(layout.CA_BUNDLE)
    assert netboot.job_settings(False, {}) == netboot.JobSettings((), (), None)
    hosts = netboot.certs_d_hosts(FULL, ["Mirror.example.com:5000", "r.example.com"])
    assert hosts == ["mirror.example.com:5000", "10.1.2.3", "[fd00::5]:8443", "r.example.com"]
    assert netboot.certs_d_path("r:5000") == layout.NET_RUN_DIR / "certs.d/r:5000"
