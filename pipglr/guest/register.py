"""``register``: run ``gitlab-runner register`` for the register runlabel.

The label mounts the caller's directory (with its ``config.toml``) and the
REGISTRATION_TOKEN secret; this module builds the command with pipglr's defaults
for podman and shared hosts, for the docker executor or pipglr's custom executor
driver (``--executor custom``), and execs it. Standard library only: runs in the image.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipglr import customsection, layout
from pipglr.errors import UsageError
from pipglr.settings import (
    DEFAULT_JOB_IMAGE,
    IMAGE_FACTS_PATH,
    insecure_url_message,
    load_image_facts,
)

#: Pull every job image, but run the local copy when the registry cannot be reached
#: (gitlab-runner tries the policies in order: helpers/docker pull policies).
PULL_POLICY = ("always", "if-not-present")
#: Feature flags every registered runner sets in ``[runners.feature_flags]``
#: (``--feature-flags NAME:VALUE``, a map flag of common/config.go). There, not as an
#: ``environment`` entry: gitlab-runner's ``populateFeatureFlags``
#: (common/build_settings.go) takes the runner's ``feature_flags`` before any
#: variable, while a job variable ``FF_NETWORK_PER_BUILD=false`` overrides the
#: runner's ``environment`` — and would put the job on the shared default network,
#: where other jobs' services answer.
FEATURE_FLAGS = {"FF_NETWORK_PER_BUILD": True}


#: The executors ``register`` writes: the docker executor (the default) and pipglr's
#: custom executor driver (:mod:`pipglr.customsection`).
EXECUTORS = ("docker", "custom")


def pipglr_options(extra: Sequence[str]) -> tuple[str, str | None, list[str]]:
    """pipglr's own ``--executor`` and ``--default-image`` (``--flag VALUE`` or
    ``--flag=VALUE``, the last one wins) taken out of the label's arguments: the
    executor, the default image (None: not given) and the arguments left for
    ``gitlab-runner register``."""
    values: dict[str, str] = {}
    rest: list[str] = []
    args = list(extra)
    at = 0
    while at < len(args):
        arg = args[at]
        flag, eq, value = arg.partition("=")
        if flag in ("--executor", "--default-image"):
            if not eq:
                if at + 1 >= len(args):
                    raise UsageError(f"{flag} needs a value")
                at, value = at + 1, args[at + 1]
            values[flag] = value
        else:
            rest.append(arg)
        at += 1
    executor = values.get("--executor", "docker")
    if executor not in EXECUTORS:
        raise UsageError(
            f"--executor {executor!r}: pipglr registers runners of the docker executor or "
            "of its own custom executor driver: use --executor docker or --executor custom"
        )
    image = values.get("--default-image")
    return executor, None if image is None else customsection.check_image(image), rest


def register_command(
    workdir: Path,
    token: str,
    facts_text: str,
    extra: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """The ``gitlab-runner register`` argv and environment for the register label.

    ``glrt-`` authentication tokens go in ``CI_SERVER_TOKEN`` (``--token``), legacy
    registration tokens in ``REGISTRATION_TOKEN``; neither appears in the argv.
    ``extra`` may choose the executor (``--executor docker|custom``, default docker)
    and the image of jobs that name none (``--default-image IMG``,
    :func:`pipglr_options`); the rest goes to ``gitlab-runner register`` as given.

    docker, with defaults for podman and shared hosts: the inner socket as docker host,
    a cache directory per project under the cache volume (``cache_dir``: the executor
    binds ``<cache_dir>/<project unique name>/...`` as the job's ``/cache``), the pull
    policy list of :data:`PULL_POLICY`, and the :data:`FEATURE_FLAGS` in
    ``[runners.feature_flags]`` (``FF_NETWORK_PER_BUILD``: a network per job, services
    by alias; no job variable can turn it off).
    Jobs are unprivileged (gitlab-runner writes ``privileged = false``) and need
    nothing more to build images (README: Image builds in jobs): no device, capability
    or security option is added. ``--docker-privileged`` only for an image built with
    ``NESTED_PRIVILEGED=true`` (or when the caller passes it).

    custom: ``[runners.custom]`` as :func:`pipglr.customsection.section` (its
    ``--custom-*`` flags); no docker option (commands/register.go
    ``askExecutorOptions`` drops ``[runners.docker]`` for ``custom``), no feature flag
    (``FF_NETWORK_PER_BUILD`` is the docker executor's; the driver makes a network per
    job itself) and never ``--docker-privileged``: the driver's jobs are unprivileged
    in any image.
    """
    facts = load_image_facts(facts_text)
    executor, default_image, rest = pipglr_options(extra)
    config = workdir / layout.CONFIG_SECRET
    args = [
        str(layout.RUNNER_BINARY), "register", "--non-interactive",
        "--config", str(config),
        "--url", facts.gitlab_url,
        "--executor", executor,
    ]  # fmt: skip
    if executor == "custom":
        args += customsection.register_flags(default_image or DEFAULT_JOB_IMAGE)
    else:
        args += [
            "--docker-image", default_image or DEFAULT_JOB_IMAGE,
            "--docker-host", layout.DOCKER_HOST,
            "--docker-cache-dir", str(layout.CACHE_MOUNT),
            *(arg for policy in PULL_POLICY for arg in ("--docker-pull-policy", policy)),
            *(arg for flag, on in FEATURE_FLAGS.items()
              for arg in ("--feature-flags", f"{flag}:{str(on).lower()}")),
        ]  # fmt: skip
        if facts.nested_privileged:
            args.append("--docker-privileged")
    args += rest
    url = effective_url(args)
    if url.startswith("http://") and not facts.gitlab_allow_http:
        raise UsageError(insecure_url_message("--url", url))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root"}
    env["CI_SERVER_TOKEN" if token.startswith("glrt-") else "REGISTRATION_TOKEN"] = token
    return args, env


def effective_url(args: Sequence[str]) -> str:
    """The URL ``gitlab-runner register`` will use: its last ``--url`` wins."""
    url = ""
    for at, arg in enumerate(args):
        if arg == "--url" and at + 1 < len(args):
            url = args[at + 1]
        elif arg.startswith("--url="):
            url = arg.split("=", 1)[1]
    return url


def register(extra: Sequence[str]) -> None:
    """Exec ``gitlab-runner register`` for the register label."""
    workdir = Path(str(layout.REGISTER_WORKDIR))
    if not (workdir / layout.CONFIG_SECRET).is_file():
        raise UsageError(
            "./config.toml not found: run `touch ./config.toml` in this directory, "
            "then repeat `podman container runlabel register IMAGE`"
        )
    try:
        token = Path(str(layout.TOKEN_PATH)).read_text().strip()
    except FileNotFoundError as exc:
        raise UsageError(
            f"no {layout.TOKEN_SECRET} secret: `echo TOKEN | podman secret create "
            f"{layout.TOKEN_SECRET} -`, then repeat the register label"
        ) from exc
    if not token:
        raise UsageError(
            f"the {layout.TOKEN_SECRET} secret is empty: `podman secret rm {layout.TOKEN_SECRET}"
            f" && echo TOKEN | podman secret create {layout.TOKEN_SECRET} -`"
        )
    args, env = register_command(workdir, token, Path(IMAGE_FACTS_PATH).read_text(), extra)
    sys.stdout.flush()
    os.execve(args[0], args, env)
