"""The configuration the runner actually uses, kept where it survives re-creation.

gitlab-runner writes to its config directory: ``.runner_system_id`` beside the
config file, and, with expiring authentication tokens, the rotated token back into
``config.toml``. The config secret is read-only (and the operator's source of
truth), so the runner runs on a copy in :data:`pipglr.layout.RUNNER_STATE_DIR`, on the
``pipglr-runner`` volume, owned by ``runner`` with mode 0700: neither the podman user
nor any job can read it, and it outlives a re-created container.

At every start :func:`effective_config` takes the secret as it is and carries over,
per runner (matched by ``url`` and ``id``), only a token the runner rotated since
the secret was written (a newer ``token_obtained_at``). ``dumpconfig`` and
``pipglr config show`` print the same merge: the operator's config plus rotated tokens.

:func:`prepare` then adds, in the working copy only, what the company-network
settings give every runner (:func:`with_job_settings`, from the network unit's
:data:`pipglr.guest.netconfig.JOBS_FILE`): proxy and CA ``environment`` entries, the
trust bundle's ``[runners.docker] volumes`` mount and ``tls-ca-file``; the operator's
own entry of the same variable, destination or ``tls-ca-file`` wins. These additions
are derived at every boot, so they are not in ``dumpconfig``: a config dumped and
stored again as the secret does not freeze them (a removed CA or proxy would live on).

It also gives the working copy the global ``listen_address``
:data:`pipglr.layout.RUNNER_LISTEN_ADDRESS` (:func:`with_listen_address`), so the
runner serves its Prometheus metrics on loopback, where the metrics collector fetches
them; a ``listen_address`` the operator set (an empty one too, which turns the
runner's metrics server off) is kept as written.

It also moves the ``environment`` entry ``FF_NETWORK_PER_BUILD=true`` that older
``register`` labels wrote into ``[runners.feature_flags]``
(:func:`with_feature_flags`): as an environment entry a job variable
``FF_NETWORK_PER_BUILD=false`` turns it off, as a feature flag nothing a job sets
does (gitlab-runner's ``populateFeatureFlags``). A flag the operator set in
``feature_flags`` (either way) is left alone.
Uses ``tomlkit`` (Debian's python3-tomlkit) to keep the operator's formatting.
"""

from __future__ import annotations

import datetime
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit

from pipglr import layout, netboot, runnerconfig
from pipglr.errors import ConfigError

#: Fields the runner owns once it rotated its token.
TOKEN_FIELDS = ("token", "token_obtained_at", "token_expires_at")


def _key(runner: Mapping[str, Any]) -> tuple[str, str]:
    return str(runner.get("url", "")), str(runner.get("id", runner.get("name", "")))


def _obtained(runner: Mapping[str, Any]) -> datetime.datetime:
    value = runner.get("token_obtained_at")
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    return datetime.datetime.min.replace(tzinfo=datetime.UTC)


def rotated_tokens(
    secret: Mapping[str, Any], state: Mapping[str, Any]
) -> dict[int, dict[str, Any]]:
    """Per index of a secret runner, the token fields the runner rotated since."""
    saved = {_key(r): r for r in state.get("runners", []) if isinstance(r, dict)}
    carried: dict[int, dict[str, Any]] = {}
    for index, runner in enumerate(secret.get("runners", [])):
        newer = saved.get(_key(runner))
        if newer is None or newer.get("token") == runner.get("token"):
            continue
        if _obtained(newer) > _obtained(runner):
            carried[index] = {f: newer[f] for f in TOKEN_FIELDS if f in newer}
    return carried


def effective_config(secret_text: str, state_text: str | None) -> tuple[str, int]:
    """The secret's text with the rotated tokens of ``state_text`` carried over, and
    how many runners' tokens were."""
    secret = runnerconfig.parse(secret_text)
    runnerconfig.check(secret)
    try:
        state = tomllib.loads(state_text or "")
    except tomllib.TOMLDecodeError:
        return secret_text, 0  # a damaged copy is replaced by the secret
    carried = rotated_tokens(secret, state)
    if not carried:
        return secret_text, 0
    document = tomlkit.parse(secret_text)
    runners = document["runners"]
    for index, fields in carried.items():
        for name, value in fields.items():
            runners[index][name] = value
    return tomlkit.dumps(document), len(carried)


def _destination(volume: str) -> str:
    """The path a ``[runners.docker] volumes`` entry mounts in the job."""
    parts = volume.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def with_job_settings(text: str, jobs: netboot.JobSettings) -> str:
    """``text`` (a checked config) with the network settings' additions per runner:
    ``environment`` entries of variables the runner does not set (in either case),
    ``volumes`` of destinations not mounted yet (docker executor), ``tls-ca-file``
    unless set. A custom executor runner gets neither ``volumes`` (no
    ``[runners.docker]`` is made up for it) nor the CA variables
    (:data:`pipglr.netboot.CA_VARIABLES`): they name the trust bundle the ``volumes``
    entry mounts, and a variable such as ``SSL_CERT_FILE`` naming a missing file
    breaks every TLS connection of the job; its proxy entries and ``tls-ca-file``
    (the runner's own trust) apply as to any runner."""
    if not (jobs.environment or jobs.volumes or jobs.tls_ca_file):
        return text
    document = tomlkit.parse(text)
    for runner in document["runners"]:
        given = runner.get("environment")
        environment = given if isinstance(given, list) else tomlkit.array()
        # Either case: an operator's HTTP_PROXY also keeps out the added http_proxy.
        names = {str(entry).split("=", 1)[0].upper() for entry in environment}
        if runner.get("executor") != "docker":
            names |= set(netboot.CA_VARIABLES)  # they name the bundle only volumes mount
        added = [e for e in jobs.environment if e.split("=", 1)[0].upper() not in names]
        if added:
            environment.extend(added)
            runner["environment"] = environment
        if jobs.tls_ca_file and "tls-ca-file" not in runner:
            runner["tls-ca-file"] = jobs.tls_ca_file
        docker = runner.get("docker")
        if runner.get("executor") != "docker" or not isinstance(docker, dict):
            continue
        given = docker.get("volumes")
        volumes = given if isinstance(given, list) else tomlkit.array()
        mounted = {_destination(str(v)) for v in volumes}
        more = [v for v in jobs.volumes if _destination(v) not in mounted]
        if more:
            volumes.extend(more)
            docker["volumes"] = volumes
    return tomlkit.dumps(document)


#: Feature flags an older ``register`` label wrote as ``environment`` entries.
MOVED_FLAGS = ("FF_NETWORK_PER_BUILD",)
#: Values Go's ``strconv.ParseBool`` (gitlab-runner's feature flag parser) takes as true.
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")


def with_feature_flags(text: str) -> str:
    """``text`` with each runner's ``environment`` entries of :data:`MOVED_FLAGS` that
    turn the flag on (the last one of the name decides, as in gitlab-runner) moved
    into ``[runners.feature_flags]``, unless the runner sets that flag there."""
    document = tomlkit.parse(text)
    changed = False
    for runner in document.get("runners", []):
        moved = False
        environment = runner.get("environment")
        if not isinstance(environment, list):
            continue
        given = runner.get("feature_flags")
        for flag in MOVED_FLAGS:
            values = [str(e).split("=", 1)[1] for e in environment if str(e).startswith(f"{flag}=")]
            if not values or values[-1] not in _GO_TRUE:
                continue
            if isinstance(given, dict) and flag in given:
                continue  # the operator's own decision
            for at in reversed(range(len(environment))):
                if str(environment[at]).startswith(f"{flag}="):
                    del environment[at]
            if not isinstance(given, dict):
                given = tomlkit.table()
                runner["feature_flags"] = given
            given[flag] = True
            moved = changed = True
        if moved and not environment:
            del runner["environment"]
    return tomlkit.dumps(document) if changed else text


def with_listen_address(text: str) -> str:
    """``text`` with the global ``listen_address = RUNNER_LISTEN_ADDRESS`` added, unless
    the config has a ``listen_address`` (then ``text`` unchanged)."""
    if "listen_address" in tomllib.loads(text):
        return text
    document = tomlkit.parse(text)
    document["listen_address"] = layout.RUNNER_LISTEN_ADDRESS  # before the tables
    return tomlkit.dumps(document)


def read_state(state_config: Path) -> str | None:
    """The runner's copy, or None when there is none yet."""
    try:
        return state_config.read_text()
    except FileNotFoundError:
        return None


def prepare(
    secret: Path, state_config: Path, jobs: netboot.JobSettings | None = None
) -> tuple[str, int]:
    """Write the effective config, with the network settings' ``jobs`` additions, the
    feature flags moved out of ``environment`` (:func:`with_feature_flags`) and the
    metrics ``listen_address`` (:func:`with_listen_address`), to ``state_config``
    (0600); return it and how many rotated tokens were carried over."""
    text, carried = effective_config(runnerconfig.read_file(secret), read_state(state_config))
    text = with_listen_address(with_feature_flags(text))
    if jobs is not None:
        text = with_job_settings(text, jobs)
    if not os.access(state_config.parent, os.W_OK):
        raise ConfigError(
            f"the runner state directory {state_config.parent} is not writable by "
            f"{layout.RUNNER.name}: start the container with the run label, which mounts "
            f"the {layout.RUNNER_VOLUME} volume there"
        )
    fd = os.open(state_config.with_suffix(".new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(state_config.with_suffix(".new"), state_config)
    return text, carried
