"""The stand-in resolves registry credentials per image in gitlab-runner v18.11.4's order
and formats (helpers/docker/auth/auth.go, docker/cli configfile, Go's json/base64)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.standin.gitlab_runner.clientconfig import (
    ConfigError,
    PathTraversal,
    go_base64_decode,
    read_configs,
)
from tests.standin.gitlab_runner.registryauth import (
    SOURCE_PAYLOAD,
    SOURCE_VARIABLE,
    Resolver,
    normalize_image_ref,
    registry_path,
)

REGISTRY = "reg.test:5000"


class Lines:
    """A logger recording what the resolver writes (auth.go ``Logger``)."""

    def __init__(self) -> None:
        self.debug: list[str] = []
        self.warnings: list[str] = []

    def debugln(self, *args: object) -> None:
        self.debug.append(" ".join(map(str, args)))

    def warningln(self, *args: object) -> None:
        self.warnings.append(" ".join(map(str, args)))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def auth_config(*entries: tuple[str, str, str]) -> str:
    """A DOCKER_AUTH_CONFIG as ``docker login`` writes it: ``auths`` with ``auth``."""
    return json.dumps({"auths": {key: {"auth": b64(f"{u}:{p}")} for key, u, p in entries}})


def registry_credentials(url: str, username: str, password: str) -> dict[str, str]:
    """One payload ``credentials`` entry as GitLab renders it (type registry)."""
    return {"type": "registry", "url": url, "username": username, "password": password}


def resolver(
    tmp_path: Path, variable: str = "", home_config: str | None = None, payload: Any = ()
) -> Resolver:
    """A resolver whose home is ``tmp_path`` (with ``.docker/config.json`` if given)."""
    if home_config is not None:
        (tmp_path / ".docker").mkdir(exist_ok=True)
        (tmp_path / ".docker" / "config.json").write_text(home_config)
    return Resolver(variable, list(payload), home=lambda: str(tmp_path))


def resolve(r: Resolver, image: str, lines: Lines | None = None) -> tuple[str, str, str] | None:
    """``(source, username, password)`` of the credentials chosen for ``image``."""
    info = r.config_for_image(image, lines or Lines())
    return None if info is None else (info.source, info.auth.username, info.auth.password)


def test_docker_auth_config_comes_before_home_config_and_payload(tmp_path: Path) -> None:
    """All three sources name the registry: $DOCKER_AUTH_CONFIG wins, the later ones are
    skipped with upstream's debug line."""
    lines = Lines()
    r = resolver(
        tmp_path,
        variable=auth_config((REGISTRY, "var-user", "var-pw")),
        home_config=auth_config((REGISTRY, "home-user", "home-pw")),
        payload=[registry_credentials(REGISTRY, "gitlab-ci-token", "job-token")],
    )
    assert resolve(r, f"{REGISTRY}/team/app:1", lines) == (SOURCE_VARIABLE, "var-user", "var-pw")
    skipped = [line for line in lines.debug if line.startswith("Not adding Docker credentials")]
    assert skipped == [
        f'Not adding Docker credentials: credentials for "{REGISTRY}" already set from '
        f'"$DOCKER_AUTH_CONFIG", ignoring credentials from "{tmp_path}/.docker/config.json"',
        f'Not adding Docker credentials: credentials for "{REGISTRY}" already set from '
        f'"$DOCKER_AUTH_CONFIG", ignoring credentials from "job payload (GitLab Registry)"',
    ], lines.debug


def test_home_config_comes_before_payload_credentials(tmp_path: Path) -> None:
    """Without the variable, the runner user's ~/.docker/config.json is next; its path is
    the source."""
    r = resolver(
        tmp_path,
        home_config=auth_config((REGISTRY, "home-user", "home-pw")),
        payload=[registry_credentials(REGISTRY, "gitlab-ci-token", "job-token")],
    )
    expected = (f"{tmp_path}/.docker/config.json", "home-user", "home-pw")
    assert resolve(r, f"{REGISTRY}/app", Lines()) == expected


def test_payload_credentials_of_type_registry_are_the_last_source(tmp_path: Path) -> None:
    """Only payload entries of type ``registry`` count (other types are ignored)."""
    r = resolver(
        tmp_path,
        payload=[
            {"type": "other", "url": "other.test", "username": "x", "password": "y"},
            registry_credentials(REGISTRY, "gitlab-ci-token", "job-token"),
        ],
    )
    assert resolve(r, f"{REGISTRY}/app") == (SOURCE_PAYLOAD, "gitlab-ci-token", "job-token")
    assert resolve(r, "other.test/app") is None, "a non-registry entry gave credentials"


def test_the_closest_registry_path_matches(tmp_path: Path) -> None:
    """An entry for a repository path wins over the host's entry for images below it."""
    variable = auth_config((REGISTRY, "host", "1"), (f"{REGISTRY}/team", "team", "2"))
    r = resolver(tmp_path, variable=variable)
    assert resolve(r, f"{REGISTRY}/team/app:1") == (SOURCE_VARIABLE, "team", "2")
    assert resolve(r, f"{REGISTRY}/other/app:1") == (SOURCE_VARIABLE, "host", "1")
    assert resolve(r, "reg.test:5001/team/app") is None, "another port is another registry"


@pytest.mark.parametrize(
    "image",
    ["alpine", "alpine:3", "library/alpine", "docker.io/library/alpine", "index.docker.io/x/y"],
)
def test_docker_hub_images_match_the_legacy_index_key(tmp_path: Path, image: str) -> None:
    """``https://index.docker.io/v1/`` (what ``docker login`` writes) covers Docker Hub
    images however they are spelled."""
    r = resolver(tmp_path, variable=auth_config(("https://index.docker.io/v1/", "hub", "pw")))
    assert resolve(r, image) == (SOURCE_VARIABLE, "hub", "pw")


def test_registry_keys_normalize_like_upstream() -> None:
    """convertToRegistryPath: scheme and path dropped, host lower-cased, a tag cut; a bare
    ``index.docker.io`` stays as it is (upstream only maps it with a scheme)."""
    assert registry_path("HTTPS://Reg.Test:5000/v2/") == "reg.test:5000"
    assert registry_path("Reg.Test:5000/Team/") == "reg.test:5000/Team"
    assert registry_path("reg.test/team/app:1") == "reg.test/team/app"
    assert registry_path("http://index.docker.io/v1/") == "docker.io"
    assert registry_path("index.docker.io") == "index.docker.io"
    assert normalize_image_ref("Reg.Test:5000/Team/app:1") == "reg.test:5000/Team/app"
    assert normalize_image_ref("localhost/app") == "localhost/app"
    assert normalize_image_ref("reg.test/app@sha256:ab") == "reg.test/app@sha256"


def test_username_and_password_fields_are_used_and_auth_overrides_them(
    tmp_path: Path,
) -> None:
    """An ``auths`` entry may carry username/password; a non-empty ``auth`` replaces them."""
    variable = json.dumps(
        {
            "auths": {
                "a.test": {"username": "plain", "password": "pw"},
                "b.test": {"username": "ignored", "auth": b64("encoded:pw2")},
            }
        }
    )
    r = resolver(tmp_path, variable=variable)
    assert resolve(r, "a.test/app") == (SOURCE_VARIABLE, "plain", "pw")
    assert resolve(r, "b.test/app") == (SOURCE_VARIABLE, "encoded", "pw2")


def test_unusable_variable_is_a_warning_and_the_next_source_is_used(tmp_path: Path) -> None:
    """Bad base64 in ``auth``: upstream's warning with Go's decoder error, then the
    payload's credentials."""
    lines = Lines()
    variable = json.dumps({"auths": {REGISTRY: {"auth": "dXNlcjpwYXNz!"}}})
    payload = [registry_credentials(REGISTRY, "gitlab-ci-token", "job-token")]
    r = resolver(tmp_path, variable=variable, payload=payload)
    assert resolve(r, f"{REGISTRY}/app", lines) == (SOURCE_PAYLOAD, "gitlab-ci-token", "job-token")
    assert lines.warnings == [
        "Failed to resolve credentials from $DOCKER_AUTH_CONFIG: illegal base64 data at "
        "input byte 12. Credentials from this source will not be used."
    ]


@pytest.mark.parametrize(
    ("variable", "error"),
    [
        (json.dumps({"auths": {REGISTRY: {"auth": b64("no-colon")}}}),
         "Invalid auth configuration file"),
        ('{"auths": []}', "json: cannot unmarshal array into Go struct field ConfigFile.auths "
         "of type map[string]types.AuthConfig"),
        ('{"auths": {"r.test": {"username": 5}}}', "json: cannot unmarshal number into Go "
         "struct field AuthConfig.auths.username of type string"),
        ('["auths"]', "json: cannot unmarshal array into Go value of type configfile.ConfigFile"),
        ('{"auths": {"r.test": {}},}', "invalid character '}' looking for beginning of "
         "object key string"),
        ('{"auths": {"r.test": {}}', "unexpected EOF"),
        ('{"credHelpers": {"r.test": "../evil"}}', "path traversal is not allowed"),
    ],
)  # fmt: skip
def test_config_errors_read_as_upstreams(variable: str, error: str) -> None:
    """docker/cli's and Go's error texts for configurations the runner cannot use."""
    with pytest.raises(ConfigError) as raised:
        read_configs(variable)
    assert str(raised.value) == error


def test_credential_helpers_are_not_run_and_fail_like_a_missing_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """credHelpers / credsStore: the helper program is not on PATH, so the source fails
    with docker-credential-helpers' ``exec`` error, as the real runner's would."""
    monkeypatch.setenv("PATH", str(tmp_path))
    lines = Lines()
    helpers = json.dumps({"credHelpers": {REGISTRY: "pipglr-none"}})
    assert resolve(resolver(tmp_path, variable=helpers), f"{REGISTRY}/app", lines) is None
    store = json.dumps({"credsStore": "pipglr-none", "auths": {REGISTRY: {}}})
    assert resolve(resolver(tmp_path, variable=store), f"{REGISTRY}/app", lines) is None
    program = '"docker-credential-pipglr-none": executable file not found in $PATH'
    assert lines.warnings == [
        f"Failed to resolve credentials from $DOCKER_AUTH_CONFIG: error {action} credentials "
        f"- err: exec: {program}, out: ``. Credentials from this source will not be used."
        for action in ("getting", "listing")
    ]


def test_path_traversal_in_a_helper_name_stops_resolution(tmp_path: Path) -> None:
    """A helper name with a path is an error for the whole resolution (not a warning)."""
    variable = json.dumps({"credsStore": "../../bin/sh"})
    r = resolver(tmp_path, variable=variable, payload=[registry_credentials(REGISTRY, "u", "p")])
    with pytest.raises(PathTraversal):
        r.config_for_image(f"{REGISTRY}/app", Lines())


def test_unreadable_home_config_is_skipped_silently(tmp_path: Path) -> None:
    """getHomeDirConfiguration drops errors: no warning, the payload is used."""
    lines = Lines()
    r = resolver(
        tmp_path, home_config="{not json", payload=[registry_credentials(REGISTRY, "u", "p")]
    )
    assert resolve(r, f"{REGISTRY}/app", lines) == (SOURCE_PAYLOAD, "u", "p")
    assert lines.warnings == [], lines.warnings


def test_no_matching_entry_resolves_to_nothing(tmp_path: Path) -> None:
    """Credentials for another registry do not apply (positive control: their own)."""
    r = resolver(tmp_path, variable=auth_config((REGISTRY, "u", "p")))
    assert resolve(r, f"{REGISTRY}/app") == (SOURCE_VARIABLE, "u", "p")
    assert resolve(r, "elsewhere.test/app") is None
    assert resolve(resolver(tmp_path), f"{REGISTRY}/app") is None, "no source at all"


def test_go_base64_errors_name_the_offending_byte() -> None:
    """encoding/base64 StdEncoding: padding required, newlines skipped, trailing garbage."""
    assert go_base64_decode("dXNlcjpw\nYXNz") == b"user:pass"
    for text, offset in (("dXNlcjpwYXM", 8), ("dX=l", 2), ("dXM=x", 4), ("dX*l", 2)):
        with pytest.raises(ConfigError, match=f"^illegal base64 data at input byte {offset}$"):
            go_base64_decode(text)
