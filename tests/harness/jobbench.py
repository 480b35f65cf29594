"""Job lifecycle benchmark: real jobs through the fake GitLab, nested vs host podman.

The same runner (the stand-in, or a real gitlab-runner via ``PIPGLR_RUNNER_BINARY``)
takes trivial jobs from the fake GitLab twice: inside the bench's pipglr container,
driving the nested podman, and as a process on this machine driving host podman's
API (a private ``podman system service`` socket). The fake GitLab timestamps each
job, so both are measured from the same clock: job handed out (``jobs/request``
answered 201) → first trace line, and → final ``PUT``; plus K jobs at once. A job that
did not succeed is not a sample: its measurement keeps why (state, failure reason and
the trace's last lines, read with :mod:`tests.harness.joblog`), which the report prints.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipglr import layout
from pipglr.bench.report import Measurement
from pipglr.bench.samehost import SameVersionHost
from pipglr.ops.outer import Outer
from tests.fakegitlab.ctl import Client, CtlError
from tests.harness import gitlab
from tests.harness.joblog import JobLog

#: The two runners: nested (in the bench container) and host.
NESTED_TOKEN, HOST_TOKEN = gitlab.AUTH_TOKENS[:2]
TRIVIAL = ["echo lifecycle"]
#: Trace lines quoted for a job that did not succeed.
TAIL_LINES = 3


def why_not(job: Mapping[str, Any], missing: str = "") -> str:
    """One line on a job that gave no sample: its id, state and failure reason (or the
    stamp it lacks) and the last lines of its trace as the job log shows them."""
    reason = job.get("failure_reason") or (f"no {missing}" if missing else "")
    head = f"job {job.get('id')} {job.get('state')}" + (f" ({reason})" if reason else "")
    tail = [line.strip() for line in JobLog.of(job).output() if line.strip()][-TAIL_LINES:]
    return f"{head}: " + (" | ".join(tail) if tail else "no trace")


def runner_config(token: str, docker_host: str, image: str, extra: str = "") -> str:
    """A config.toml for one docker runner polling the fake GitLab."""
    return f"""concurrent = 8
check_interval = 1

[[runners]]
  name = "bench"
  url = "{gitlab.URL}"
  id = 1
  token = "{token}"
  executor = "docker"
  environment = ["FF_NETWORK_PER_BUILD=true"]
  [runners.docker]
    host = "{docker_host}"
    image = "{image}"
    pull_policy = ["if-not-present"]
{extra}"""


def nested_config(image: str) -> str:
    """Config of the runner inside the bench container (nested podman)."""
    return runner_config(NESTED_TOKEN, layout.DOCKER_HOST, image,
                         f'    cache_dir = "{layout.CACHE_MOUNT}"\n')  # fmt: skip


@contextmanager
def api_socket(podman: Sequence[str]) -> Iterator[str]:
    """A private API service of ``podman`` (the host podman of the outer mode: root's,
    or the rootless test user's); yields its URL."""
    with tempfile.TemporaryDirectory(prefix="pipglr-jobbench-api-", dir="/var/tmp") as tmp:
        os.chmod(tmp, 0o777)  # the rootless user's service creates its socket here
        sock = Path(tmp) / "podman.sock"
        service = subprocess.Popen(
            [*podman, "system", "service", "--time=0", f"unix://{sock}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            yield f"unix://{sock}"
        finally:
            service.terminate()
            service.wait(30)


@contextmanager
def host_runner(
    docker_host: str, runner: Path, image: str, helper_image: str, log: Path
) -> Iterator[None]:
    """The runner as a host process, driving the podman API at ``docker_host``."""
    with tempfile.TemporaryDirectory(prefix="pipglr-jobbench-", dir="/var/tmp") as tmp:
        config = Path(tmp) / "config.toml"
        # host podman 4.3's compat image import ignores the tag, so the host side
        # names its helper image instead of importing the prebuilt archive.
        config.write_text(runner_config(
            HOST_TOKEN, docker_host, image,
            f'    helper_image = "{helper_image}"\n'
            f'    cache_dir = "{tmp}/cache"\n',
        ))  # fmt: skip
        with log.open("w") as out:
            process = subprocess.Popen(
                [str(runner), "run", "--config", str(config), "--working-directory", tmp],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HOME": tmp},
            )  # fmt: skip
        try:
            yield
        finally:
            process.terminate()
            process.wait(30)


class JobLifecycle:
    """Measures jobs of one side (nested or host) through the fake GitLab."""

    def __init__(self, client: Client, image: str) -> None:
        self.client = client
        self.image = image

    def run(self, token: str, count: int, timeout: float = 300) -> list[dict[str, Any]]:
        """Queue ``count`` trivial jobs for ``token`` at once; their final records."""
        ids = [
            self.client.add_job({"name": "lifecycle", "image": self.image, "runner": token,
                                 "script": TRIVIAL, "project_id": 90 + n})
            for n in range(count)
        ]  # fmt: skip
        return [self._final(job_id, timeout) for job_id in ids]

    def _final(self, job_id: int, timeout: float) -> dict[str, Any]:
        """The job's final record, or its record as it is when ``timeout`` ran out."""
        try:
            return self.client.wait(job_id, timeout=timeout)
        except CtlError:
            return self.client.job(job_id)

    def wait_polling(self, token: str, timeout: float = 120) -> None:
        """Wait until a runner with ``token`` has asked for a job."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for request in self.client.requests(path="/api/v4/jobs/request"):
                if (request.get("body") or {}).get("token") == token:
                    return
            time.sleep(0.5)
        raise AssertionError(f"no runner polled with token {token[:10]}... in {timeout:.0f}s")

    def measure(
        self, side: str, mode: str, token: str, repeat: int, levels: Sequence[int]
    ) -> list[Measurement]:
        """First trace and final update per job, then K jobs at once (wall time)."""
        first = Measurement(f"job handed out -> first trace ({side})", mode, "s")
        final = Measurement(f"job handed out -> final PUT ({side})", mode, "s")
        self.run(token, 1)  # warm-up: helper image import, first network
        for _ in range(repeat):
            (job,) = self.run(token, 1)
            self._sample(first, job, "pick_to_first_trace")
            self._sample(final, job, "pick_to_final_update")
        results = [first, final]
        for k in levels:
            wall = Measurement(f"{k} jobs at once, first pick -> last final PUT ({side})",
                               mode, "s")  # fmt: skip
            for _ in range(max(1, repeat // 2)):
                self._wall(wall, self.run(token, k))
            results.append(wall)
        return results

    @staticmethod
    def _wall(m: Measurement, jobs: list[dict[str, Any]]) -> None:
        """First pick to last final update of jobs that all succeeded."""
        stamps = [j["stamps"] for j in jobs]
        for job, stamp in zip(jobs, stamps, strict=True):
            if job["state"] != "success" or not stamp.get("final_update"):
                m.fail(why_not(job, "final update" if job["state"] == "success" else ""))
                return
        picks = [s["picked"]["mono"] for s in stamps]
        m.samples.append(max(s["final_update"]["mono"] for s in stamps) - min(picks))

    @staticmethod
    def _sample(m: Measurement, job: dict[str, Any], key: str) -> None:
        value = job["durations"].get(key)
        if job["state"] == "success" and value is not None:
            m.samples.append(float(value))
        else:
            m.fail(why_not(job, key if job["state"] == "success" else ""))


class FakeGitLabJobs:
    """``invoke bench``'s job-lifecycle driver (:class:`pipglr.bench.suite.JobDriver`)."""

    def __init__(self, client: Client, runner: Path, image: str, helper_image: str,
                 log_dir: Path) -> None:  # fmt: skip
        self.jobs = JobLifecycle(client, image)
        self.runner = runner
        self.image = image
        self.helper_image = helper_image
        self.log_dir = log_dir

    def nested_config(self) -> str:
        """The bench container's config secret: its runner polls the fake GitLab."""
        return nested_config(self.image)

    def helper_images(self) -> Sequence[str]:
        """The helper image the host-side runner names (the same-version host loads it)."""
        return (self.helper_image,)

    def lifecycle(
        self, mode: str, podman: Sequence[str], repeat: int, levels: Sequence[int],
        same: SameVersionHost | None = None,
    ) -> list[tuple[Measurement, Measurement, Measurement | None]]:  # fmt: skip
        """Nested, host and (with ``same``) same-version host measurements."""
        Outer(mode, tuple(podman)).copy_image_from_root(self.helper_image)
        self.jobs.wait_polling(NESTED_TOKEN)
        nested = self.jobs.measure("nested", mode, NESTED_TOKEN, repeat, levels)
        with api_socket(podman) as url:
            host = self._host_side("host", mode, url, repeat, levels)
        others: list[Measurement | None] = [None] * len(nested)
        if same is not None:
            with same.api() as url:
                others = list(self._host_side("same-version host", mode, url, repeat, levels))
        return list(zip(nested, host, others, strict=True))

    def _host_side(self, side: str, mode: str, docker_host: str, repeat: int,
                   levels: Sequence[int]) -> list[Measurement]:  # fmt: skip
        """The runner on this machine against the API at ``docker_host``."""
        log = self.log_dir / f"jobbench-{side.replace(' ', '-')}-runner-{mode}.log"
        with host_runner(docker_host, self.runner, self.image, self.helper_image, log):
            self.jobs.wait_polling(HOST_TOKEN)
            return self.jobs.measure(side, mode, HOST_TOKEN, repeat, levels)
