"""The help texts of the invoke tasks of this package (tasks.py shows them with
``invoke --help TASK``; kept here so the tasks stay thin)."""

from __future__ import annotations

BENCH_HELP = {
    "image": "image to measure (default: config pipglr.image)",
    "quick": "a subset (fewer rounds; image builds included) that takes ~10 minutes",
    "modes": "outer modes, comma-separated: rootful,rootless",
    "rootless_podman": "command running podman as an unprivileged user (pipglr-test-podman)",
    "out": "directory for the JSON and Markdown reports (default results/)",
    "standin": "TESTS ONLY: rebuild with the stand-in when timing a warm rebuild",
    "runner_binary": "local gitlab-runner for the warm-rebuild timing and host-side jobs",
    "jobs": "job lifecycle through the fake GitLab, nested vs host (root: test netns)",
    "job_base": "base image of the job image that builds images (examples/podman-job), "
    "built when missing",
}
