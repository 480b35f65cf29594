"""A runner's ``tls-ca-file``, as gitlab-runner v18.11.4 uses it.

network/client.go ``addTLSCA`` (called by ``createTransport`` for every client, http or
https): the file is read; if it holds at least one PEM certificate
(``AppendCertsFromPEM``), HTTPS to GitLab trusts the system roots *plus* it, and its
text becomes the client's ``caData``. ``buildCAChain`` returns ``caData`` whenever it is
set (before looking at the connection's TLS state, so over plain HTTP too), and
common/build.go ``GetCITLSVariables`` gives every job of that runner
``CI_SERVER_TLS_CA_FILE`` (common/tls: ``VariableCAFile``), a public internal *file*
variable holding that text. An unreadable or certificate-less file is skipped (a log
line upstream), as if unset.

Not replayed: without ``tls-ca-file``, an HTTPS GitLab's chain is built from the
connection (``ca_chain.Builder``); the fake GitLab speaks plain HTTP, where that gives
nothing.
"""

from __future__ import annotations

import contextlib
import re
import ssl

VARIABLE_CA_FILE = "CI_SERVER_TLS_CA_FILE"
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


def ca_chain(path: str) -> str:
    """``caData``: the file's text when it holds a PEM certificate, else empty."""
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as source:
            text = source.read()
    except OSError:
        return ""
    return text if _PEM.search(text) else ""


def context(path: str) -> ssl.SSLContext:
    """The HTTPS context: system roots, plus the file's certificates when it has any."""
    created = ssl.create_default_context()
    if ca_chain(path):
        with contextlib.suppress(ssl.SSLError):  # AppendCertsFromPEM skips what fails
            created.load_verify_locations(cafile=path)
    return created
