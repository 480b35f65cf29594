"""The metrics and debug server of ``gitlab-runner run`` (commands/multi.go
``listenAddress``, ``setupMetricsAndDebugServer``, ``serveMetrics``, ``serveDebugData``,
``restrictHTTPMethods``, ``RunCommand.Describe``/``Collect`` with ``concurrentDesc`` and
``limitDesc``; commands/builds_helper.go ``numBuildsDesc``, the request concurrency
descs, ``statesAndStages``, ``runnersCounters``, ``Collect``, ``ListJobsHandler``,
``newBuildsHelper``'s ``jobsTotal``; common/version.go ``NewMetricsCollector``;
helpers/prometheus/log_hook.go ``numErrorsDesc``; common/consts.go
``DefaultMetricsServerPort``).

The address: the ``run --listen-address`` flag (env ``LISTEN_ADDRESS``) over
config.toml's global ``listen_address``; with neither, "listen_address not defined,
metrics & debug endpoints disabled" and no server. An address without a port gets
:data:`DEFAULT_METRICS_SERVER_PORT`; one ``net.SplitHostPort`` refuses for another
reason is logged ("invalid listen address: ...") and the runner runs on without the
server. A listen that fails is fatal: the runner exits 1. The address is read once,
when ``run`` starts (``run`` calls ``setupMetricsAndDebugServer``; ``reloadConfig``
does not), so a reload neither moves nor stops the server.

Served: ``GET``/``HEAD /metrics`` (other methods 405), in the text exposition format
as promhttp writes it (families sorted by name, label pairs by name, series by label
values; gzip when accepted), and ``/debug/jobs/list``. Only the metrics the stand-in
keeps the state of are exported: ``gitlab_runner_version_info``,
``gitlab_runner_concurrent``, ``gitlab_runner_limit``, ``gitlab_runner_jobs``,
``gitlab_runner_jobs_total``, ``gitlab_runner_request_concurrency`` (and its
``_exceeded_total``, ``_hard_limit``, ``_adaptive_limit``, ``_used_limit``),
``gitlab_runner_errors_total``. Not mirrored: the Go runtime and process collectors
(``go_*``, ``process_*``), ``/debug/pprof/``, and the collectors of state the stand-in
does not keep (health helper, config file access, worker feeds and slots, API request
statuses, job duration and queue histograms, failures, job inputs).
"""

from __future__ import annotations

import gzip
import platform
import socket
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import TYPE_CHECKING

from . import NAME, REVISION, UPSTREAM, VERSION, log
from .buildinfo import short_token

if TYPE_CHECKING:
    from .multi import RunCommand

#: common/consts.go ``DefaultMetricsServerPort``.
DEFAULT_METRICS_SERVER_PORT = 9252
#: What promhttp (client_golang 1.23, prometheus/common 0.67) answers a scrape with.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
MISSING_PORT = "missing port in address"


class AddrError(ValueError):
    """Go's ``net.AddrError``: ``address <addr>: <why>``."""

    def __init__(self, why: str, address: str) -> None:
        super().__init__(f"address {address}: {why}")


class ListenError(Exception):
    """``net.Listen`` failed (logged as fatal; the runner exits 1)."""


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``: host (brackets removed) and port, or :class:`AddrError`
    (missing port, too many colons, missing or unexpected brackets)."""
    i = hostport.rfind(":")
    if i < 0:
        raise AddrError(MISSING_PORT, hostport)
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise AddrError("missing ']' in address", hostport)
        if end + 1 == len(hostport):
            raise AddrError(MISSING_PORT, hostport)
        if end + 1 != i:
            why = "too many colons in address" if hostport[end + 1] == ":" else MISSING_PORT
            raise AddrError(why, hostport)
        host, j, k = hostport[1:end], 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise AddrError("too many colons in address", hostport)
    if "[" in hostport[j:]:
        raise AddrError("unexpected '[' in address", hostport)
    if "]" in hostport[k:]:
        raise AddrError("unexpected ']' in address", hostport)
    return host, hostport[i + 1 :]


def listen_address(configured: str, flag: str = "") -> str:
    """``listenAddress``: the flag, else the config's ``listen_address``; "" when
    neither is set; the default port added when the address has none; an address
    ``SplitHostPort`` refuses otherwise raises :class:`AddrError`."""
    address = flag or configured
    if not address:
        return ""
    try:
        _, port = split_host_port(address)
    except AddrError as exc:
        if MISSING_PORT not in str(exc):
            raise
        port = ""
    return f"{address}:{DEFAULT_METRICS_SERVER_PORT}" if not port else address


# --- the exposition format -------------------------------------------------------------
@dataclass
class Family:
    """One metric family: name, help, type and its series (labels, value)."""

    name: str
    help: str
    type: str
    series: list[tuple[dict[str, str], float]] = field(default_factory=list)


def go_float(value: float) -> str:
    """prometheus/common expfmt ``writeFloat``: ``strconv.FormatFloat(v, 'g', -1, 64)``
    (the shortest digits; the exponent form when the exponent is below -4 or 6 and
    above, as ``%g`` decides for the shortest precision)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if str(value).startswith("-") else ""
    if value == 0:
        return f"{sign}0"
    shortest = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in shortest.digits)
    point = len(digits) + int(shortest.exponent)  # digs.dp
    exp = point - 1
    if exp < -4 or exp >= 6:
        rest = f".{digits[1:]}" if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{rest}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _escape(text: str, quote: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def exposition(families: Iterable[Family]) -> str:
    """The text format (0.0.4) as ``promhttp`` writes a gathered registry."""
    lines: list[str] = []
    for family in sorted(families, key=lambda f: f.name):
        lines.append(f"# HELP {family.name} {_escape(family.help, quote=False)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        rows = [(sorted(labels.items()), value) for labels, value in family.series]
        for pairs, value in sorted(rows, key=lambda row: [v for _, v in row[0]]):
            text = ",".join(f'{k}="{_escape(v, quote=True)}"' for k, v in pairs)
            lines.append(f"{family.name}{{{text}}} {go_float(value)}" if text else
                         f"{family.name} {go_float(value)}")  # fmt: skip
    return "".join(f"{line}\n" for line in lines)


def version_labels() -> dict[str, str]:
    """common/version.go ``AppVersion`` as ``NewMetricsCollector`` labels it."""
    machine = platform.machine()
    return {
        "name": NAME,
        "version": VERSION,
        "revision": REVISION,
        "branch": UPSTREAM,
        "go_version": f"python{platform.python_version()}",
        "built_at": "",
        "os": "linux",
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine),
    }


def collect(command: RunCommand) -> list[Family]:
    """What the registered collectors the stand-in mirrors gather (see the module's
    docstring): ``RunCommand.Collect``, ``buildsHelper.Collect``, the version info and
    the log hook."""
    config, system_id = command.config, command.helper.system_id
    counters, running = command.helper.snapshot()
    limit = Family("gitlab_runner_limit", "The current value of concurrent setting", "gauge")
    for runner in config.runners:
        labels = {"runner": short_token(runner.token), "runner_name": runner.name}
        limit.series.append(({**labels, "system_id": system_id}, float(runner.limit)))
    # statesAndStages: an idle series per runner counter, then one per build permutation
    states: dict[tuple[str, ...], int] = {}
    for token, counter in counters.items():
        idle = (short_token(token), counter.runner_name, counter.system_id)
        states[(*idle, "idle", "idle", "idle")] = 0
    for info, build in running:
        key = (info.short_token, info.runner.name, system_id, build.state, build.stage,
               build.executor_stage)  # fmt: skip
        states[key] = states.get(key, 0) + 1
    names = ("runner", "runner_name", "system_id", "state", "stage", "executor_stage")
    jobs = Family("gitlab_runner_jobs", "The current number of running builds.", "gauge")
    jobs.series = [(dict(zip(names, key, strict=True)), float(n)) for key, n in states.items()]
    per_runner = [
        ("gitlab_runner_request_concurrency", "gauge",
         "The current number of concurrent requests for a new job", "requests"),
        ("gitlab_runner_request_concurrency_exceeded_total", "counter",
         "Count of excess requests above the configured request_concurrency limit", "exceeded"),
        ("gitlab_runner_request_concurrency_hard_limit", "gauge",
         "Configured request_concurrency limit", "hard_limit"),
        ("gitlab_runner_request_concurrency_adaptive_limit", "gauge",
         "Computed adaptive request concurrency limit", "adaptive_limit"),
        ("gitlab_runner_request_concurrency_used_limit", "gauge",
         "Used request concurrency limit", "used_limit"),
    ]  # fmt: skip
    families = [
        Family("gitlab_runner_concurrent", "The current value of concurrent setting", "gauge",
               [({}, float(config.concurrent))]),
        limit,
        jobs,
        Family("gitlab_runner_jobs_total", "Total number of handled jobs", "counter", [
            ({"runner": short_token(t), "runner_name": c.runner_name, "system_id": c.system_id},
             float(c.jobs_total)) for t, c in counters.items()]),
        Family("gitlab_runner_version_info",
               "A metric with a constant '1' value labeled by different build stats fields.",
               "gauge", [(version_labels(), 1.0)]),
        Family("gitlab_runner_errors_total", "The number of caught errors.", "counter",
               [({"level": level}, float(n)) for level, n in dict(log.COUNTS).items()]),
    ]  # fmt: skip
    for name, kind, text, attribute in per_runner:
        series = [
            ({"runner": short_token(t), "system_id": c.system_id}, float(getattr(c, attribute)))
            for t, c in counters.items()
        ]
        families.append(Family(name, text, kind, series))
    return families


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` (``1m2.5s``, ``750ms``, ``0s``)."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign, nanos = ("-" if nanos < 0 else ""), abs(nanos)

    def fraction(value: int, scale: int) -> str:
        whole, part = divmod(value, scale)
        digits = str(part).rjust(len(str(scale)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if nanos < 1_000:
        return f"{sign}{nanos}ns"
    if nanos < 1_000_000:
        return f"{sign}{fraction(nanos, 1_000)}µs"
    if nanos < 1_000_000_000:
        return f"{sign}{fraction(nanos, 1_000_000)}ms"
    hours, rest = divmod(nanos, 3_600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{fraction(rest, 10**9)}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def jobs_list(command: RunCommand) -> str:
    """``ListJobsHandler``'s body: one line per running build."""
    _, running = command.helper.snapshot()
    return "".join(
        f"url={info.job.job_url()} state={build.state} stage={build.stage} "
        f"executor_stage={build.executor_stage} duration={go_duration(build.duration())}\n"
        for info, build in running
    )


# --- the server -------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    """The ``http.ServeMux`` of ``setupMetricsAndDebugServer``."""

    server: MetricsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Go's server logs no requests."""

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, text: str) -> None:
        """``http.Error``."""
        headers = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}
        self._send(status, f"{text}\n".encode(), headers)

    def _serve(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/metrics":
            if self.command not in ("GET", "HEAD"):  # restrictHTTPMethods
                self._error(405, "Method Not Allowed")
                return
            body = exposition(collect(self.server.command)).encode()
            headers = {"Content-Type": CONTENT_TYPE}
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
            self._send(200, body, headers)
        elif path == "/debug/jobs/list":
            body = jobs_list(self.server.command).encode()
            self._send(200, body, {"X-List-Version": "2", "Content-Type": "text/plain"})
        else:
            self._error(404, "404 page not found")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve


class MetricsServer(ThreadingHTTPServer):
    """``net.Listen("tcp", address)`` + ``http.Serve`` in the background."""

    daemon_threads = True

    def __init__(self, command: RunCommand, address: str) -> None:
        self.command, self.address = command, address
        try:
            host, port_text = split_host_port(address)
            port = int(port_text or 0) if port_text.isdigit() or not port_text else (
                socket.getservbyname(port_text, "tcp"))  # fmt: skip
            family, bind_host = self._family(host, port)
        except (ValueError, OSError) as exc:
            raise ListenError(f"listen tcp {address}: {exc}") from exc
        self.address_family, self._dual = family, not host
        try:
            super().__init__((bind_host, port), _Handler)
        except OSError as exc:
            why = (exc.strerror or str(exc)).lower()
            raise ListenError(f"listen tcp {address}: bind: {why}") from exc
        self._thread: threading.Thread | None = None

    @staticmethod
    def _family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
        """All addresses (dual stack) for an empty host, else the first address of it
        (IPv4 first, as Go's resolver orders a listener's address)."""
        if not host:
            if socket.has_dualstack_ipv6():
                return socket.AF_INET6, "::"
            return socket.AF_INET, "0.0.0.0"  # noqa: S104 - Go's ":port" means all
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found.sort(key=lambda entry: entry[0] != socket.AF_INET)
        return found[0][0], str(found[0][4][0])

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s reverse lookup of the host."""
        if self._dual:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    @property
    def port(self) -> int:
        """The port listened on (useful with port 0)."""
        return int(self.server_address[1])

    def start(self) -> None:
        """``go http.Serve(listener, mux)``."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="metrics")
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listener (the process exit, upstream)."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        self.server_close()


def setup(command: RunCommand, flag: str = "") -> MetricsServer | None:
    """``setupMetricsAndDebugServer``: the server, or None when disabled or the address
    is invalid (both logged); a listen failure is logged as fatal and raises
    :class:`ListenError`."""
    fields = {"builds": len(command.helper.snapshot()[1]), "max_builds": command.config.concurrent}
    try:
        address = listen_address(command.config.listen_address, flag)
    except AddrError as exc:
        log.error(f"invalid listen address: {exc}", **fields)
        return None
    if not address:
        log.info("listen_address not defined, metrics & debug endpoints disabled", **fields)
        return None
    try:
        server = MetricsServer(command, address)
    except ListenError as exc:
        log.fatal("Failed to create listener for metrics server", error=exc, **fields)
        raise
    server.start()
    log.info("Metrics server listening", address=address, **fields)
    return server
