"""The ``pipglr`` command (operator CLI; grows with the operator-CLI issue).

Today: ``pipglr doctor`` checks the host (exit 1 when something blocks running),
``pipglr labels [NAME]`` prints the runlabel command lines an image carries
(read through podman-py), and ``pipglr runlabel NAME [ARGS...]`` executes one, with
extra arguments appended as ``podman container runlabel`` does. Errors are one line
and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence

from pipglr import doctor, engine, labels
from pipglr.errors import PipglrError, UsageError

DEFAULT_IMAGE = "localhost/pipglr:latest"


def image_runlabels(image: str, url: str | None = None) -> dict[str, str]:
    """The runlabels stored in ``image`` (only the names pipglr defines)."""
    with engine.client(url) as podman:
        found = engine.image_labels(podman, image)
    missing = [name for name in labels.LABELS if name not in found]
    if missing:
        raise UsageError(
            f"{image} has no {', '.join(missing)} label: is it a pipglr image? "
            "Build one with `invoke build`"
        )
    return {name: found[name] for name in labels.LABELS}


def command_argv(
    texts: dict[str, str], image: str, name: str, extra: Sequence[str] = ()
) -> list[str]:
    """The argv of label ``name`` (texts read from ``image``), ``extra`` appended."""
    if name not in texts:
        raise UsageError(f"unknown runlabel {name!r}: use one of {', '.join(texts)}")
    return labels.argv_from_text(texts[name], image) + list(extra)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipglr", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--image",
        default=os.environ.get("PIPGLR_IMAGE", DEFAULT_IMAGE),
        help="pipglr image (default: $PIPGLR_IMAGE or %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("labels", help="print the runlabel command lines of the image")
    show.add_argument("name", nargs="?", help="one label (default: all)")
    doctor_ = sub.add_parser("doctor", help="check this host can run pipglr; show fixes")
    doctor_.add_argument("--user", help="the user who runs pipglr (default: you)")
    doctor_.add_argument(
        "--podman", default="podman", help="podman command acting as that user (default podman)"
    )
    doctor_.add_argument("--json", action="store_true", help="machine-readable output")
    run = sub.add_parser("runlabel", help="execute one runlabel of the image")
    run.add_argument("name", help="register, setupstorage, setupcache, run or dumpconfig")
    run.add_argument("args", nargs=argparse.REMAINDER, help="appended to the command")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipglr`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "doctor":
            findings = doctor.gather(args.user, shlex.split(args.podman))
            if args.json:
                print(json.dumps(doctor.as_dicts(findings), indent=2))
            else:
                print(doctor.render(findings), end="")
            return 1 if any(f.blocks for f in findings) else 0
        if args.command == "labels":
            texts = image_runlabels(args.image)
            names = [args.name] if args.name else list(texts)
            for name in names:
                print(f"{name}: {shlex.join(command_argv(texts, args.image, name))}")
            return 0
        texts = image_runlabels(args.image)
        argv_ = command_argv(texts, args.image, args.name, args.args)
        print(f"+ {shlex.join(argv_)}", file=sys.stderr, flush=True)
        return subprocess.run(argv_, check=False).returncode
    except PipglrError as exc:
        print(f"pipglr: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
