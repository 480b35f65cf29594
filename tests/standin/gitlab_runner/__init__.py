"""Test stand-in for gitlab-runner (PIPGLR-TEST-STANDIN). Never ship it.

No registry reachable from our machines carries gitlab-runner, so the engine tests build
the image with this package, packed into a single-file zipapp by
:func:`tests.standin.build_standin`. Release builds refuse any file containing the marker
above (``pipglr/build/runnerbin.py`` ``STANDIN_MARKER``).

It replays what gitlab-runner's docker executor does, through the Docker-compatible API
of a podman service, request by request, as of the upstream release :data:`UPSTREAM`
(GitHub mirror gitlabhq/gitlab-runner): ``register`` (verify / legacy register),
``run`` (the multi-runner loop: job requests, incremental traces, final updates, token
rotation, SIGQUIT/SIGTERM), and per job the docker executor's network, volumes, helper
image (prebuilt archive import), services, stage containers (hijacked attach, start,
wait) and cleanup; and the custom executor's side of its driver contract (config_exec
JSON, prepare/run/cleanup programs, their environment, exit codes and signals:
:mod:`.custom`), chosen by ``executor = "custom"``. Every module cites the upstream
files it mirrors; re-check them when RUNNER_VERSION moves. Standard library only; runs
on Python 3.11+.
"""

from __future__ import annotations

#: The upstream release whose behaviour is replayed (tag of gitlabhq/gitlab-runner).
UPSTREAM = "v18.11.4"
#: What ``--version`` reports. Its ``0.0.0`` gives the helper image the tag
#: ``x86_64-v0.0.0``, which no real release uses, so a real runner never picks up the
#: stand-in's helper image by mistake (helpers/container/helperimage/info.go Version).
VERSION = "0.0.0-pipglr-standin"
REVISION = "standin"
NAME = "gitlab-runner"
