"""HTTP(S) to the coordinator (network/client.go ``client``: ``do``, ``doJSON``,
``doRaw``): one connection per request, a status, lower-cased headers and the body;
connection failures are the Go client's "client error" (-100). A request may carry the
cancelable context of a job request (:class:`Canceller`).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import platform
import socket
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from . import NAME, REVISION, VERSION, log, proxyenv, tlsca

CLIENT_ERROR = -100
#: network/client.go ``createTransport``: ``ResponseHeaderTimeout`` (10 min), the longest
#: a job request may be held by Workhorse's long poll before the answer starts.
RESPONSE_HEADER_TIMEOUT = 10 * 60.0


def goarch() -> str:
    """This machine as Go's GOARCH names it."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@dataclass
class Answer:
    """Status (or :data:`CLIENT_ERROR`), lower-cased headers and the body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON (``None`` if it is not)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Canceller:
    """The cancelable context of commands/multi.go ``doJobRequest``: :meth:`cancel` (on
    every stop signal, ``interruptRun``) aborts the job requests in flight, a long-polled
    one included, and refuses every later one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.canceled = False

    def cancel(self) -> None:
        """Cancel: shut the connections of requests in flight down."""
        with self._lock:
            self.canceled = True
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def track(self, sock: socket.socket) -> bool:
        """Watch a request's connection; False once cancelled."""
        with self._lock:
            if not self.canceled:
                self._open.add(sock)
            return not self.canceled

    def untrack(self, sock: socket.socket) -> None:
        """The request is over."""
        with self._lock:
            self._open.discard(sock)


def _proxy_authorization(proxy: proxyenv.Proxy | None) -> dict[str, str]:
    """Go's transport sends the proxy URL's user info as basic ``Proxy-Authorization``."""
    if proxy is None or not proxy.userinfo:
        return {}
    user = urllib.parse.unquote(proxy.userinfo)
    return {"Proxy-Authorization": "Basic " + base64.b64encode(user.encode()).decode()}


class Transport:
    """Plain HTTP(S) to the coordinator; one connection per request (network/client.go)."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        #: GitLab URL → its runner's ``tls-ca-file`` (:func:`tlsca.context`).
        self.ca_files: dict[str, str] = {}

    def request(
        self,
        base_url: str,
        method: str,
        uri: str,
        payload: object = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        cancel: Canceller | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """``doJSON``/``doRaw``: one call under ``/api/v4/`` (``cancel``: the request's
        context; a cancelled request is a client error)."""
        parts = urllib.parse.urlsplit(base_url.rstrip("/") + "/api/v4/" + uri)
        wait = timeout or self.timeout
        conn: http.client.HTTPConnection
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        # createTransport's ``Proxy: http.ProxyFromEnvironment``: https through a CONNECT
        # tunnel, http as an absolute-form request to the proxy.
        proxy = proxyenv.proxy_for(urllib.parse.urlunsplit(parts), os.environ)
        proxy_headers = _proxy_authorization(proxy)
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                proxy.netloc if proxy else parts.netloc,
                timeout=wait,
                context=tlsca.context(self.ca_files.get(base_url.rstrip("/"), "")),
            )
            if proxy is not None:
                conn.set_tunnel(parts.hostname or "", parts.port or 443, proxy_headers)
        else:
            conn = http.client.HTTPConnection(proxy.netloc if proxy else parts.netloc, timeout=wait)
            if proxy is not None:
                target = urllib.parse.urlunsplit(parts)
        all_headers = {
            "User-Agent": f"{NAME} {VERSION} ({REVISION}; linux/{goarch()})",
            "X-Request-Id": uuid.uuid4().hex,
            **(headers or {}),
        }
        body = data
        if payload is not None:
            body = json.dumps(payload).encode()
            all_headers["Content-Type"] = "application/json"
            all_headers["Accept"] = "application/json"
        if proxy is not None and parts.scheme != "https":
            all_headers |= proxy_headers
        try:
            if cancel is not None:
                conn.connect()
                if conn.sock is None or not cancel.track(conn.sock):
                    return Answer(CLIENT_ERROR, {}, b"context canceled")
            conn.request(method, target, body=body, headers=all_headers)
            response = conn.getresponse()
            content = response.read()
            found = {key.lower(): value for key, value in response.getheaders()}
            return Answer(response.status, found, content)
        except (OSError, http.client.HTTPException) as exc:
            log.debug("request failed", uri=uri, error=exc)
            reason = "context canceled" if cancel is not None and cancel.canceled else str(exc)
            return Answer(CLIENT_ERROR, {}, reason.encode())
        finally:
            if cancel is not None and conn.sock is not None:
                cancel.untrack(conn.sock)
            conn.close()
