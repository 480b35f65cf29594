"""Runner state that lasts: a rotated token and the system id survive a restart and
a re-created container. (The graceful stop is tested through `pipglr down` in
test_cli.py.)

Destructive: a second pipglr container from the run label, with its own runner
(another authentication token of the fake GitLab), is restarted and re-created.
"""

from __future__ import annotations

import datetime
import time
import tomllib
from collections.abc import Iterator

import pytest

from pipglr import layout
from pipglr.ops.outer import Outer
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab
from tests.image.conftest import Pipglr, SecondPipglr, second_pipglr, wait_ready

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.destructive]

NAME = "pipglr-graceful"


def state_of(outer: Outer, path: str) -> str:
    """A file of the second container's runner state, read as runner."""
    return outer.exec(NAME, "cat", path, user=layout.RUNNER.name, check=False).stdout


def expiring(config: str, token: str) -> str:
    """``config`` for ``token``, obtained an hour ago and expiring in ten minutes: past
    75 % of its lifetime, so gitlab-runner rotates it at once (commands/multi.go)."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    lines = []
    for line in config.splitlines():
        key = line.strip().split(" = ")[0]
        if key == "token":
            line = f'  token = "{token}"'
        elif key == "token_obtained_at":
            line = f"  token_obtained_at = {(now - datetime.timedelta(hours=1)).strftime(stamp)}"
        elif key == "token_expires_at":
            line = f"  token_expires_at = {(now + datetime.timedelta(minutes=10)).strftime(stamp)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture
def rotating(pipglr: Pipglr) -> Iterator[SecondPipglr]:
    """A second pipglr (not started yet) for a runner whose token is due for rotation."""
    with second_pipglr(pipglr, NAME) as second:
        yield second


@pytest.mark.security
def test_rotated_token_and_system_id_survive_restart_and_recreation(
    rotating: SecondPipglr, pipglr: Pipglr, fake_gitlab: Client
) -> None:
    """The runner rotates its token into its state; a restart and a re-created
    container keep that token and the system id; dump-config shows it."""
    outer, original = rotating.outer, gitlab.ROTATING_TOKENS[pipglr.outer.mode]
    rotating.start(expiring(pipglr.config_text, original))
    config_path = str(layout.RUNNER_STATE_CONFIG)
    deadline = time.monotonic() + 90
    while original in state_of(outer, config_path) or "token" not in state_of(outer, config_path):
        assert time.monotonic() < deadline, state_of(outer, config_path)
        time.sleep(1)
    rotated = tomllib.loads(state_of(outer, config_path))["runners"][0]["token"]
    assert rotated.startswith("glrt-") and rotated != original
    assert rotated in [r.get("token") for r in fake_gitlab.runners()], "GitLab issued it"
    system_id = state_of(outer, str(layout.RUNNER_STATE_DIR / ".runner_system_id")).strip()
    assert system_id, "the runner wrote its system id"
    session_id = pipglr.outer.exec(
        pipglr.name, "cat", str(layout.RUNNER_STATE_DIR / ".runner_system_id"),
        user=layout.RUNNER.name,
    ).stdout.strip()  # fmt: skip
    assert system_id != session_id, "each pipglr container has a system id of its own"

    def check(after: str) -> None:
        text = state_of(outer, config_path)
        assert rotated in text and original not in text, f"after {after}: {text}"
        again = state_of(outer, str(layout.RUNNER_STATE_DIR / ".runner_system_id")).strip()
        assert again == system_id, f"system id after {after}"
        dumped = outer.exec(NAME, str(layout.PYTHON), "-m", layout.GUEST_MODULE, "dump-config",
                            user=layout.RUNNER.name).stdout  # fmt: skip
        assert rotated in dumped, "dump-config shows the token the runner uses"

    outer.run("restart", "--time", "60", NAME, timeout=300)
    wait_ready(outer, NAME)
    check("restart")
    rotating.start()  # re-created: same volumes, same secret
    check("re-create")
