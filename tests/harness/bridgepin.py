"""Keep root podman's bridge at one MAC address while the engine tests run (a host
workaround, never part of pipglr).

A Linux bridge without an address of its own takes the lowest MAC of its ports, so
it changes whenever a container with a lower MAC joins or leaves. Every other
container on it still has the old gateway MAC in its ARP cache, and its packets are
dropped until that entry is resolved again. netavark fixed this by giving the bridge
a static MAC (containers/netavark#833, "bridge: force static mac on bridge
interface", 1.9); Debian 12 ships netavark 1.4.0. Measured here: with a rootful
client container connecting to a test host every 0.2 s, starting and removing one
other rootful container stalled the client's connections for 20-30 s; the runner in
the rootful session container lost 60 s per test that started or removed a second
rootful container (its job request timed out), four times per run. With the bridge's
current MAC set explicitly the kernel keeps it, and the same experiment showed no
stall.

:func:`pinned` watches for the bridge (netavark creates it with the first container
and removes it with the last) and pins the MAC it has.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: root podman's default network's bridge (netavark's ``podman0``).
BRIDGE = "podman0"
#: ``addr_assign_type`` of an address set by hand (``NET_ADDR_SET``): the bridge code
#: never changes it then (net/bridge/br_stp_if.c ``br_stp_recalculate_bridge_id``).
NET_ADDR_SET = "3"
SYS_NET = Path("/sys/class/net")


def pin_once(bridge: str = BRIDGE, sys_net: Path = SYS_NET) -> str | None:
    """Set the bridge's current MAC as its own; the MAC pinned now, else None."""
    device = sys_net / bridge
    try:
        if (device / "addr_assign_type").read_text().strip() == NET_ADDR_SET:
            return None
        mac = (device / "address").read_text().strip()
    except OSError:
        return None  # no bridge (yet)
    done = subprocess.run(["ip", "link", "set", "dev", bridge, "address", mac],
                          capture_output=True, check=False)  # fmt: skip
    return mac if done.returncode == 0 else None


@contextmanager
def pinned(bridge: str = BRIDGE, interval: float = 0.2) -> Iterator[list[str]]:
    """Pin the bridge's MAC whenever it (re)appears, until the block ends; yields the
    list of MACs pinned so far."""
    stop = threading.Event()
    seen: list[str] = []

    def watch() -> None:
        while not stop.wait(interval):
            mac = pin_once(bridge)
            if mac:
                seen.append(mac)

    thread = threading.Thread(target=watch, name="bridge-pin", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(5)
