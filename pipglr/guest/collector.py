"""``metrics-collect``: what only root can see, gathered for the metrics exporter.

Runs as root (``pipglr-metrics-collect.service``, only CAP_NET_ADMIN and
CAP_DAC_READ_SEARCH kept, no listening socket), because the exporter (user podman,
:mod:`pipglr.guest.metrics`) cannot: reading nftables counters needs CAP_NET_ADMIN,
the runner's working copy of config.toml is the runner's own, and the egress guard
refuses the podman user the runner's loopback metrics endpoint. Every
:data:`INTERVAL` seconds a round writes into :data:`pipglr.layout.METRICS_RUN_DIR`
(atomically, 0644):

- :data:`pipglr.layout.COLLECTED_FACTS`: the time of the round; the state of each
  ``.service`` of :data:`pipglr.layout.ALL_UNITS` (one ``systemctl show`` call:
  ``active``, ``sub``, ``restarts`` = NRestarts, ``since`` = ActiveEnterTimestamp as
  epoch seconds or null); the egress guard's drop counters per destination class
  (``nft -j list counters``, :func:`pipglr.guest.netguard.drop_counters`; no table:
  ``enabled`` false); whether the runner's metrics could be fetched;
- :data:`pipglr.layout.RUNNER_METRICS_COPY`: the body of the runner's ``/metrics``
  (its ``listen_address`` from the working copy :data:`pipglr.layout.RUNNER_STATE_CONFIG`,
  default :data:`pipglr.layout.RUNNER_LISTEN_ADDRESS`; a wildcard or empty host is
  asked on loopback), at most :data:`RUNNER_METRICS_LIMIT` bytes within
  :data:`RUNNER_METRICS_TIMEOUT` seconds; removed when the fetch fails, so a runner
  that stopped answering is not served as fresh.

Standard library only: this module runs in the image.
"""

from __future__ import annotations

import json
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipglr import layout
from pipglr.guest import netguard, statsbook

#: Seconds between rounds (a Prometheus scrape interval is commonly 15 s or more).
INTERVAL = 15.0
RUNNER_METRICS_TIMEOUT = 5.0
RUNNER_METRICS_LIMIT = 4 * 1024 * 1024
#: What ``systemctl show`` is asked (systemd 257 has each).
SHOW_PROPERTIES = ("Id", "ActiveState", "SubState", "NRestarts", "ActiveEnterTimestamp",
                   "ActiveEnterTimestampMonotonic")  # fmt: skip
Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
Fetch = Callable[[str], bytes]
Log = Callable[[str], None]


def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its text output (never raises for its exit status)."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30)


def service_units(units: Iterable[str] = layout.ALL_UNITS) -> list[str]:
    """The services among ``units`` (timers and sockets have no restarts to count)."""
    return [unit for unit in units if unit.endswith(".service")]


# -- units ---------------------------------------------------------------------------------
def _since(props: Mapping[str, str], now: float, monotonic_now: float) -> float | None:
    """When the unit last became active, in epoch seconds: ``@SECONDS`` (``systemctl
    --timestamp=unix``), else from the monotonic timestamp; None when never."""
    stamp = props.get("ActiveEnterTimestamp", "").strip()
    if stamp.startswith("@"):
        try:
            return float(stamp[1:])
        except ValueError:
            pass
    try:
        micros = int(props.get("ActiveEnterTimestampMonotonic", "0") or 0)
    except ValueError:
        micros = 0
    if micros <= 0:
        return None
    return now - (monotonic_now - micros / 1e6)


def parse_show(
    text: str, units: Sequence[str], now: float, monotonic_now: float
) -> dict[str, dict[str, Any]]:
    """``systemctl show UNIT...`` output (one block of ``Key=value`` lines per unit,
    blank lines between) as ``{unit: {"active", "sub", "restarts", "since"}}`` for
    each of ``units``; a block is matched by its ``Id`` (by position without one). A
    unit without a block is ``unknown``."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key] = value
    by_id = {block["Id"]: block for block in blocks if block.get("Id")}
    found: dict[str, dict[str, Any]] = {}
    for index, unit in enumerate(units):
        props = by_id.get(unit)
        if props is None and len(blocks) == len(units) and not blocks[index].get("Id"):
            props = blocks[index]
        if props is None:
            found[unit] = {"active": "unknown", "sub": "unknown", "restarts": 0, "since": None}
            continue
        try:
            restarts = int(props.get("NRestarts", "0") or 0)
        except ValueError:
            restarts = 0
        found[unit] = {
            "active": props.get("ActiveState") or "unknown",
            "sub": props.get("SubState") or "unknown",
            "restarts": restarts,
            "since": _since(props, now, monotonic_now),
        }
    return found


def unit_states(units: Sequence[str], runner: Run = run) -> dict[str, dict[str, Any]]:
    """The states of ``units`` from one ``systemctl show`` call."""
    argv = ["systemctl", "show", "--timestamp=unix",
            f"--property={','.join(SHOW_PROPERTIES)}", *units]  # fmt: skip
    now, monotonic_now = time.time(), time.monotonic()
    result = runner(argv)
    return parse_show(result.stdout if result.returncode == 0 else "", units, now, monotonic_now)


# -- egress guard --------------------------------------------------------------------------
def guard_drops(runner: Run = run) -> dict[str, Any]:
    """``{"enabled": bool, "drops": {class: {"packets", "bytes"}}}`` from the guard's
    table; no table (the guard is off or not up): not enabled, no drops."""
    result = runner(["nft", "-j", "list", "counters", "table", "inet", netguard.TABLE])
    if result.returncode != 0:
        return {"enabled": False, "drops": {}}
    try:
        drops = netguard.drop_counters(result.stdout)
    except ValueError:
        return {"enabled": False, "drops": {}}
    return {"enabled": True, "drops": drops}


# -- the runner's metrics ------------------------------------------------------------------
def listen_address(config_text: str | None) -> str:
    """Where to ask for the runner's metrics: config.toml's global ``listen_address``
    (default :data:`pipglr.layout.RUNNER_LISTEN_ADDRESS`); a wildcard or empty host
    (``0.0.0.0``, ``[::]``, ``:9252``) is asked on 127.0.0.1 (a wildcard listener
    takes IPv4 loopback too)."""
    address = layout.RUNNER_LISTEN_ADDRESS
    if config_text:
        try:
            value = tomllib.loads(config_text).get("listen_address")
        except tomllib.TOMLDecodeError:
            value = None
        if isinstance(value, str) and value.strip():
            address = value.strip()
    host, sep, port = address.rpartition(":")
    if not sep:
        return address  # no port: the fetch says what is wrong with it
    if host in ("", "0.0.0.0", "[::]", "::", "*"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def fetch(address: str, timeout: float = RUNNER_METRICS_TIMEOUT,
          limit: int = RUNNER_METRICS_LIMIT) -> bytes:  # fmt: skip
    """``GET http://ADDRESS/metrics`` directly (never through a proxy); at most
    ``limit`` bytes. Raises OSError (URLError, timeouts) or ValueError (too large)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{address}/metrics", timeout=timeout) as response:
        body: bytes = response.read(limit + 1)
    if len(body) > limit:
        raise ValueError(f"the runner's metrics exceed {limit} bytes")
    return body


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


def runner_metrics(address: str, copy: Path, fetcher: Fetch = fetch) -> dict[str, Any]:
    """Fetch the runner's metrics into ``copy``; on failure remove ``copy`` and say
    why in one line."""
    try:
        body = fetcher(address)
    except (OSError, ValueError) as exc:
        copy.unlink(missing_ok=True)
        return {"ok": False, "error": _one_line(exc), "address": address}
    statsbook.write_atomic(copy, body)
    return {"ok": True, "error": None, "address": address}


# -- the round -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sources:
    """Where a round looks (the real ones by default; tests give their own)."""

    runner: Run = run
    fetcher: Fetch = fetch
    state_config: Path = Path(str(layout.RUNNER_STATE_CONFIG))
    run_dir: Path = Path(str(layout.METRICS_RUN_DIR))
    units: tuple[str, ...] = tuple(service_units())


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def collect(sources: Sources, now: float) -> dict[str, Any]:
    """One round: gather, write both files, return what was written to
    ``collected.json``."""
    run_dir = sources.run_dir
    run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    address = listen_address(_read(sources.state_config))
    copy = run_dir / layout.RUNNER_METRICS_COPY.name
    facts = {
        "time": now,
        "units": unit_states(list(sources.units), sources.runner),
        "guard": guard_drops(sources.runner),
        "runner_metrics": runner_metrics(address, copy, sources.fetcher),
    }
    statsbook.write_atomic(
        run_dir / layout.COLLECTED_FACTS.name, json.dumps(facts, indent=1, sort_keys=True) + "\n"
    )
    return facts


def news(previous: Mapping[str, Any] | None, facts: Mapping[str, Any]) -> list[str]:
    """Journal lines for what changed since the last round (the guard's presence, the
    runner metrics' fetch); nothing while all stays the same."""
    lines = []
    guard, fetched = facts["guard"], facts["runner_metrics"]
    if previous is None or previous["guard"]["enabled"] != guard["enabled"]:
        lines.append("egress guard counters: " + ("read" if guard["enabled"] else "no guard table"))
    old = None if previous is None else previous["runner_metrics"]
    if old is None or (old["ok"], old["error"]) != (fetched["ok"], fetched["error"]):
        lines.append(
            f"runner metrics from {fetched['address']}: "
            + ("fetched" if fetched["ok"] else f"not fetched ({fetched['error']})")
        )
    return lines


def serve(log: Log, sources: Sources | None = None, interval: float = INTERVAL) -> None:
    """The service: a round every ``interval`` seconds until stopped; a round that
    fails is said (once while it keeps failing the same way) and the next one tries
    again."""
    sources = sources or Sources()
    previous: dict[str, Any] | None = None
    last_error = ""
    while True:
        started = time.monotonic()
        try:
            facts = collect(sources, time.time())
            for line in news(previous, facts):
                log(line)
            previous, last_error = facts, ""
        except Exception as exc:  # noqa: BLE001 - keep collecting; the next round retries
            line = _one_line(exc)
            if line != last_error:
                log(f"round failed: {line}")
            last_error = line
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
