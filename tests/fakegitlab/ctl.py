"""Drive a running fake GitLab: a urllib :class:`Client` and the ``ctl`` command.

Every command prints JSON on stdout; failures exit non-zero with one line on stderr::

    python3 -m fakegitlab ctl [--url URL] add-job SPEC_JSON   # or @FILE, or - (stdin)
    python3 -m fakegitlab ctl job ID
    python3 -m fakegitlab ctl jobs
    python3 -m fakegitlab ctl artifacts ID
    python3 -m fakegitlab ctl wait ID [--state S [S ...]] [--timeout SECONDS]
    python3 -m fakegitlab ctl cancel ID [--force]
    python3 -m fakegitlab ctl requests [--since N] [--path PREFIX]
    python3 -m fakegitlab ctl runners
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .records import FINAL_STATES

DEFAULT_URL = "http://127.0.0.1:8080"


class CtlError(RuntimeError):
    """The coordinator refused a control request, or a wait timed out (one line)."""


class Client:
    """The ``/_pipglr/`` control API over urllib.

    Connection failures propagate as ``OSError`` (callers poll for start-up with it);
    answers with an error status become :class:`CtlError`.
    """

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; returns the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error") or exc.reason
            except (ValueError, AttributeError):
                message = exc.reason
            raise CtlError(f"{method} {path}: {exc.code} {message}") from None

    def add_job(self, spec: dict[str, Any]) -> int:
        """Queue a job; returns its id."""
        return int(self.call("POST", "/_pipglr/jobs", spec)["id"])

    def job(self, job_id: int) -> dict[str, Any]:
        """One job record in full."""
        return dict(self.call("GET", f"/_pipglr/jobs/{job_id}"))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job (summaries)."""
        return list(self.call("GET", "/_pipglr/jobs"))

    def artifacts(self, job_id: int) -> list[dict[str, Any]]:
        """What a job uploaded (``entries``: the archive's members)."""
        return list(self.call("GET", f"/_pipglr/jobs/{job_id}/artifacts"))

    def cancel(self, job_id: int, force: bool = False) -> dict[str, Any]:
        """Cancel a job as the GitLab UI does."""
        return dict(self.call("POST", f"/_pipglr/jobs/{job_id}/cancel", {"force": force}))

    def requests(self, since: int = 0, path: str | None = None) -> list[dict[str, Any]]:
        """The runner request log."""
        query = {"since": str(since)} | ({"path": path} if path else {})
        return list(self.call("GET", "/_pipglr/requests?" + urllib.parse.urlencode(query)))

    def runners(self) -> list[dict[str, Any]]:
        """The runners the coordinator knows."""
        return list(self.call("GET", "/_pipglr/runners"))

    def wait(
        self,
        job_id: int,
        states: Iterable[str] = (),
        timeout: float = 300.0,
        interval: float = 0.2,
    ) -> dict[str, Any]:
        """Poll until the job is final or in one of ``states``; CtlError on timeout."""
        wanted = set(states) | set(FINAL_STATES)
        deadline = time.monotonic() + timeout
        while True:
            record = self.job(job_id)
            if record["state"] in wanted:
                return record
            if time.monotonic() > deadline:
                raise CtlError(
                    f"job {job_id} still {record['state']} after {timeout:g}s "
                    f"(waiting for {', '.join(sorted(wanted))})"
                )
            time.sleep(interval)


def read_spec(text: str) -> Any:
    """A spec argument: inline JSON, ``@FILE`` or ``-`` for stdin."""
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CtlError(f"spec is not JSON: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``ctl`` options and subcommands (shared by ``__main__`` and :func:`main`)."""
    parser.add_argument("--url", default=DEFAULT_URL, help="fake GitLab URL")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("add-job", help="queue a job").add_argument("spec", help="JSON, @FILE or -")
    sub.add_parser("job", help="one job record").add_argument("id", type=int)
    sub.add_parser("jobs", help="all jobs")
    sub.add_parser("artifacts", help="what a job uploaded").add_argument("id", type=int)
    wait = sub.add_parser("wait", help="wait for a final (or given) state")
    wait.add_argument("id", type=int)
    wait.add_argument(
        "--state", action="extend", nargs="+", default=[], help="extra states to stop at"
    )
    wait.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    cancel = sub.add_parser("cancel", help="cancel a job")
    cancel.add_argument("id", type=int)
    cancel.add_argument("--force", action="store_true", help="end a canceling job now")
    reqs = sub.add_parser("requests", help="the runner request log")
    reqs.add_argument("--since", type=int, default=0)
    reqs.add_argument("--path", default=None, help="path prefix")
    sub.add_parser("runners", help="known runners")


def run(args: argparse.Namespace) -> Any:
    """Execute a parsed ``ctl`` command; returns what to print."""
    client = Client(args.url)
    if args.action == "add-job":
        return {"id": client.add_job(read_spec(args.spec))}
    if args.action == "job":
        return client.job(args.id)
    if args.action == "jobs":
        return client.jobs()
    if args.action == "artifacts":
        return client.artifacts(args.id)
    if args.action == "wait":
        return client.wait(args.id, args.state, args.timeout)
    if args.action == "cancel":
        return client.cancel(args.id, args.force)
    if args.action == "requests":
        return client.requests(args.since, args.path)
    return client.runners()


def execute(args: argparse.Namespace) -> int:
    """Run and print; one ``fakegitlab ctl: ...`` line and exit 1 on failure."""
    try:
        result = run(args)
    except (CtlError, OSError) as exc:
        print(f"fakegitlab ctl: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``ctl`` as its own program."""
    parser = argparse.ArgumentParser(prog="fakegitlab ctl", description="Drive a fake GitLab.")
    add_arguments(parser)
    return execute(parser.parse_args(argv))
