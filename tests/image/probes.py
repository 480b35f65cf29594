"""An HTTP probe jobs and containers run, and its results: which target answered, and
how each one that did not failed.

"No answer" alone proves little: a typo'd address, a dead test host or a slow route
give one too. So the probe names the kind of failure: ``refused`` (a TCP reset or an
ICMP port-unreachable: ECONNREFUSED), ``unreachable`` (an ICMP host/net unreachable or
admin-prohibited: EHOSTUNREACH/ENETUNREACH — over IPv6 the kernel reports an
administratively prohibited destination as EACCES —, what the egress guard's
``reject with icmpx type admin-prohibited`` gives), ``timed-out`` (nothing came back: a drop, or no
route at all), ``reset``, or ``error`` for anything else; tests assert the kind they
expect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Python for ``python3 -c "$PROBE" NAME=URL...``: one line per target,
#: ``egress NAME KIND DETAIL`` (HEAD of the body for an answer, else the error).
PROBE = """\
import errno, socket, sys, urllib.request as u
def kind(e):
    r = getattr(e, 'reason', e)
    if isinstance(r, (socket.timeout, TimeoutError)): return 'timed-out'
    if isinstance(r, ConnectionRefusedError): return 'refused'
    if isinstance(r, ConnectionResetError): return 'reset'
    blocked = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES)
    if getattr(r, 'errno', None) in blocked: return 'unreachable'
    return 'error'
for arg in sys.argv[1:]:
  name, url = arg.split('=', 1)
  try:
    with u.urlopen(u.Request(url), timeout=5) as r: body = r.read(200)
    print('egress', name, 'answered', r.status, body.decode(errors='replace').strip())
  except u.HTTPError as e: print('egress', name, 'answered', e.code)
  except Exception as e: print('egress', name, kind(e), e)
"""
KINDS = ("answered", "refused", "unreachable", "timed-out", "reset", "error")
_LINE = re.compile(rf"^egress (\S+) ({'|'.join(KINDS)})(?: (.*))?$")


@dataclass(frozen=True)
class Outcome:
    """What one target did: ``kind`` (one of :data:`KINDS`) and the rest of the line."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}".strip()


def outcomes(lines: Iterable[str]) -> dict[str, Outcome]:
    """``name → Outcome`` from the probe's output lines (other lines are ignored)."""
    found = {}
    for line in lines:
        match = _LINE.match(line)
        if match:
            found[match[1]] = Outcome(match[2], match[3] or "")
    return found
