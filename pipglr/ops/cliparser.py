"""The ``pipglr`` command line (argparse): global options and every subcommand.

Only the parser: what each command does is :mod:`pipglr.ops.cli`. Help texts are plain
text (argparse shows them as written).
"""

from __future__ import annotations

import argparse
import os

from pipglr import layout
from pipglr.settings import DEFAULT_JOB_IMAGE

DEFAULT_IMAGE = "localhost/pipglr:latest"
#: What ``pipglr --help`` opens with.
DESCRIPTION = (
    "The operator's side of pipglr, a rootless podman-in-podman GitLab Runner: check the "
    "host, register runners, run the container, keep its settings."
)


def _host_ids(parser: argparse.ArgumentParser) -> None:
    """``--allow-host-ids``: root's consent to share the host's ids with jobs."""
    parser.add_argument(
        "--allow-host-ids", action="store_true",
        help="run by root: accept that jobs' ids 1-999 are the host's own (see README)",
    )  # fmt: skip


def _resources(parser: argparse.ArgumentParser) -> None:
    """The options of a command that starts pipglr: consent, limits, extras."""
    _host_ids(parser)
    parser.add_argument("--cpus", help="CPU limit, e.g. 2 or 1.5")
    parser.add_argument("--memory", help="memory limit, e.g. 4g")
    parser.add_argument("--pids", type=int, help="process limit")
    parser.add_argument("--volume", action="append", default=[], help="extra -v (repeatable)")
    parser.add_argument("--env", action="append", default=[], help="extra -e (repeatable)")
    parser.add_argument(
        "--metrics", metavar="[ADDR:]PORT",
        help="publish the metrics exporter (README: Monitoring) on the host's ADDR:PORT; "
        "ADDR an IPv4 address or [IPv6] address, default 127.0.0.1 (this host only); "
        "0.0.0.0 exposes the metrics to the network. Default: not published",
    )  # fmt: skip


def parser() -> argparse.ArgumentParser:
    """The ``pipglr`` command line: global options and every subcommand."""
    parser = argparse.ArgumentParser(prog="pipglr", description=DESCRIPTION)
    parser.add_argument(
        "--image",
        default=os.environ.get("PIPGLR_IMAGE", DEFAULT_IMAGE),
        help="pipglr image (default: $PIPGLR_IMAGE or %(default)s)",
    )
    parser.add_argument(
        "--podman",
        default=os.environ.get("PIPGLR_PODMAN", "podman"),
        help="podman command to use (default: $PIPGLR_PODMAN or podman)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    doctor_ = sub.add_parser("doctor", help="check this host can run pipglr; show fixes")
    doctor_.add_argument("--user", help="the user who runs pipglr (default: you)")
    doctor_.add_argument("--json", action="store_true", help="machine-readable output")

    reg = sub.add_parser("register", help="register runners into the config.toml secret")
    reg.add_argument("--url", help="GitLab URL (default: the image's GITLAB_URL)")
    reg.add_argument("--token-file", help="file holding the token (default: read stdin)")
    reg.add_argument("--description", help="runner description")
    reg.add_argument("--tags", help="comma-separated tags (legacy registration tokens)")
    reg.add_argument("--run-untagged", action="store_true", help="also run untagged jobs")
    reg.add_argument("--count", type=int, default=1, help="how many runners to add")
    reg.add_argument("--concurrency", type=int, help="set `concurrent` to this")
    reg.add_argument(
        "--executor", choices=("docker", "custom"), default="docker",
        help="docker (default): gitlab-runner's docker executor on the nested podman; "
        "custom: pipglr's driver, one container per job kept for all its stages "
        "(README: Choosing the executor)",
    )  # fmt: skip
    reg.add_argument(
        "--default-image", metavar="IMAGE",
        help="image of jobs that name none (default: " + DEFAULT_JOB_IMAGE + " for docker)",
    )  # fmt: skip
    executor = sub.add_parser("executor", help="pipglr's custom executor driver")
    executor_sub = executor.add_subparsers(dest="action", required=True)
    toml = executor_sub.add_parser(
        "toml", help="print the [runners.custom] section that runs pipglr's driver"
    )
    toml.add_argument("--default-image", metavar="IMAGE", help="image of jobs that name none")

    config = sub.add_parser("config", help="show or change the config.toml secret")
    config_sub = config.add_subparsers(dest="action", required=True)
    show = config_sub.add_parser("show", help="print it, credentials redacted")
    show.add_argument("--show-secrets", action="store_true", help="do not redact credentials")
    get = config_sub.add_parser("get", help="print one value")
    get.add_argument("key", help="dotted key, e.g. concurrent or runners.0.limit")
    setp = config_sub.add_parser("set", help="change values (KEY=VALUE, TOML values)")
    setp.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    config_sub.add_parser("edit", help="edit it in $EDITOR, checked before saving")

    up = sub.add_parser("up", help="start pipglr from the image's run label")
    _resources(up)
    down = sub.add_parser("down", help="stop and remove pipglr (secrets, volumes stay)")
    down.add_argument(
        "--time", type=int, default=layout.OUTER_STOP_TIMEOUT,
        help="seconds running jobs may take to finish before pipglr is killed",
    )  # fmt: skip
    status = sub.add_parser("status", help="container, inner services, runners, storage")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    storage = sub.add_parser(
        "storage", help="nested storage: usage, cap, what the evictor removes next"
    )
    storage.add_argument("--json", action="store_true", help="machine-readable output")
    logs = sub.add_parser("logs", help="show pipglr's logs")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following")
    quad = sub.add_parser("quadlet", help="write quadlet units to start pipglr at boot")
    quad.add_argument("--dir", help="target (default: ~/.config/containers/systemd)")
    quad.add_argument(
        "--auto-update", action="store_true",
        help="let `podman auto-update` take newer images (rolls back one that does not "
        "come up; needs podman 5.0+ and a registry image)",
    )  # fmt: skip
    _resources(quad)

    _network_parsers(sub)
    _images_parsers(sub)

    show_labels = sub.add_parser("labels", help="print the runlabel command lines")
    show_labels.add_argument("name", nargs="?", help="one label (default: all)")
    run = sub.add_parser("runlabel", help="execute one runlabel of the image")
    run.add_argument("name", help="register, setupstorage, setupcache, run or dumpconfig")
    _host_ids(run)
    run.add_argument("args", nargs=argparse.REMAINDER, help="appended to the command")
    return parser


def _network_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``mirror``, ``ca``, ``proxy``, ``registry``: the company-network settings."""
    restart = " (applies at the next `pipglr down && pipglr up`)"
    mirror = sub.add_parser("mirror", help="registry mirrors for job and service images" + restart)
    mirror_sub = mirror.add_subparsers(dest="action", required=True)
    add = mirror_sub.add_parser("add", help="pull REGISTRY's images from MIRROR first")
    add.add_argument("registry", help="the registry mirrored, e.g. docker.io")
    add.add_argument("mirror", help="the mirror as host[:port], e.g. mirror.example.com:5000")
    add.add_argument(
        "--insecure",
        action="store_true",
        help="the mirror speaks plain HTTP or has an unverifiable certificate",
    )
    mirror_sub.add_parser("list", help="print REGISTRY MIRROR per line")
    remove = mirror_sub.add_parser("remove", help="drop every mirror of REGISTRY")
    remove.add_argument("registry")

    ca = sub.add_parser("ca", help="private certificate authorities to trust" + restart)
    ca_sub = ca.add_subparsers(dest="action", required=True)
    add = ca_sub.add_parser("add", help="trust the CA certificate(s) of a PEM file")
    add.add_argument("file", help="PEM file (-----BEGIN CERTIFICATE-----)")
    add.add_argument("--name", help="name to store it under (default: the file's stem)")
    ca_sub.add_parser("list", help="name, subject, expiry and SHA-256 fingerprint")
    remove = ca_sub.add_parser("remove", help="stop trusting the CA stored as NAME")
    remove.add_argument("name")

    proxy = sub.add_parser("proxy", help="the HTTP(S) proxy of the runner, podman, jobs" + restart)
    proxy_sub = proxy.add_subparsers(dest="action", required=True)
    setp = proxy_sub.add_parser("set", help="store the proxy (what is not given stays)")
    setp.add_argument("url", nargs="?", help="proxy URL for http and https, e.g. "
                      "http://proxy.example.com:3128")  # fmt: skip
    setp.add_argument("--http", help="proxy URL for http only ('' drops it)")
    setp.add_argument("--https", help="proxy URL for https only ('' drops it)")
    setp.add_argument("--no-proxy", help="hosts, domains, CIDRs not proxied: a,b,c "
                      "(loopback and pipglr's own addresses always are)")  # fmt: skip
    proxy_sub.add_parser("show", help="print the stored proxy (password hidden)")
    proxy_sub.add_parser("clear", help="remove the stored proxy")

    registry = sub.add_parser("registry", help="registry logins for job images" + restart)
    registry_sub = registry.add_subparsers(dest="action", required=True)
    login = registry_sub.add_parser("login", help="store a login; the password comes on stdin")
    login.add_argument("registry", help="host[:port], e.g. registry.example.com")
    login.add_argument("--username", "-u", required=True, help="the user name")
    logout = registry_sub.add_parser("logout", help="remove REGISTRY's login")
    logout.add_argument("registry")
    registry_sub.add_parser("list", help="print REGISTRY USER per line (never passwords)")


def _images_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``images``: the maintained job images (README: Maintained job images)."""
    images = sub.add_parser(
        "images", help="maintained job images: built in pipglr as localhost/NAME, kept, "
        "rebuilt weekly",
    )  # fmt: skip
    images_sub = images.add_subparsers(dest="action", required=True)
    add = images_sub.add_parser(
        "add", help="copy the definitions in DIR (one NAME/Containerfile, optional "
        "NAME/depends, per image) into pipglr, replacing those of the same names",
    )  # fmt: skip
    add.add_argument("dir", help="directory of definitions")
    add.add_argument("--build", action="store_true", help="then build what is due")
    listing = images_sub.add_parser("list", help="each definition, its image and state")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    build = images_sub.add_parser(
        "build", help="build what is due (changed, missing, parent changed); NAMEs: "
        "rebuild those, and what is built on them",
    )  # fmt: skip
    build.add_argument("names", nargs="*", metavar="NAME")
    build.add_argument(
        "--pull", action="store_true", help="pull the external base images first (as the "
        "weekly timer does), so a base updated upstream makes its images due",
    )  # fmt: skip
    shell = images_sub.add_parser(
        "shell", help="an interactive shell in a container of localhost/NAME, removed after"
    )
    shell.add_argument("name")
    shell.add_argument(
        "--commit", action="store_true",
        help="commit the container back as localhost/NAME when the shell exits (until "
        "the next rebuild of NAME: lasting changes belong in its Containerfile)",
    )  # fmt: skip
    remove = images_sub.add_parser("remove", help="delete the definition NAME and its image")
    remove.add_argument("name")
