"""The help texts of the invoke tasks of this package (tasks.py shows them with
``invoke --help TASK``; kept here so the tasks stay thin)."""

from __future__ import annotations

BUILD_HELP = {
    "tag": "image name to build (default: config pipglr.image)",
    "base_image": "BASE_IMAGE build arg (default docker.io/library/debian:trixie-slim)",
    "base": "base image: auto (local, else pull, else bootstrap), pull, offline",
    "build_type": "BUILD_TYPE: prod (no package manager) or dev",
    "prune_interval": "PRUNE_INTERVAL: systemd OnCalendar of the nested prune (daily)",
    "runner_version": "RUNNER_VERSION: latest or vX.Y.Z",
    "arch": "TARGETARCH: amd64 or arm64",
    "gitlab_url": "GITLAB_URL written by the register label (https://gitlab.com/)",
    "nested_privileged": "NESTED_PRIVILEGED: true lets jobs run privileged (build images)",
    "gitlab_allow_http": "GITLAB_ALLOW_HTTP: true accepts an http:// GitLab URL (tokens in clear)",
    "storage_threshold": "STORAGE_THRESHOLD: nested storage cap, e.g. 20GB or 25% (default 25%)",
    "runner_binary": "offline build: local gitlab-runner binary instead of the download",
    "runner_sha256": "expected sha256 of --runner-binary",
    "helper_archive": "offline build: the release's prebuilt-alpine-<arch>.tar.xz helper image",
    "standin": "TESTS ONLY: build with the stand-in runner (tests/standin, built as a zipapp) "
    "and its helper image as the prebuilt archive (unless --helper-archive)",
}
