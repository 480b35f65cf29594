"""``python3 -m fakegitlab serve ...`` and ``python3 -m fakegitlab ctl ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import ack, ctl
from .server import serve
from .state import State


def build_parser() -> argparse.ArgumentParser:
    """The ``serve`` and ``ctl`` subcommands."""
    parser = argparse.ArgumentParser(prog="fakegitlab", description="A fake GitLab for tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve the fake coordinator")
    run.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    run.add_argument("--port", type=int, default=8080, help="port (8080)")
    run.add_argument(
        "--token",
        action="append",
        default=[],
        help="runner authentication token to accept (repeatable)",
    )
    run.add_argument(
        "--registration-token",
        action="append",
        default=[],
        help="legacy registration token; registering issues a glrt- token",
    )
    run.add_argument(
        "--update-interval",
        type=int,
        default=1,
        help="X-GitLab-Trace-Update-Interval in seconds (1)",
    )
    run.add_argument(
        "--long-poll",
        type=float,
        default=0.0,
        help="Workhorse's apiCiLongPollingDuration: hold job requests whose last_update is"
        " current up to this many seconds (0: no long polling, GitLab's default)",
    )
    run.add_argument(
        "--no-runner-ack",
        dest="runner_ack",
        action="store_false",
        help="hand out jobs the legacy way even to runners advertising two_phase_job_commit"
        " (GitLab's allow_runner_job_acknowledgement flag off)",
    )
    run.add_argument(
        "--runner-ack-timeout",
        type=float,
        default=ack.ACK_TIMEOUT,
        help="seconds a two-phase job waits for the runner's acceptance (120)",
    )
    run.add_argument(
        "--external-url",
        default=None,
        help="URL put into job payloads (default: from the Host header)",
    )
    run.add_argument("--quiet", action="store_true", help="no access log on stderr")
    ctl.add_arguments(sub.add_parser("ctl", help="drive a running fake GitLab"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    if args.command == "ctl":
        return ctl.execute(args)
    state = State(
        args.token,
        args.registration_token,
        update_interval=args.update_interval,
        long_poll=args.long_poll,
        external_url=args.external_url,
        runner_ack=args.runner_ack,
        ack_timeout=args.runner_ack_timeout,
    )
    try:
        serve(args.host, args.port, state, access_log=not args.quiet)
    except OSError as exc:
        print(f"fakegitlab: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
