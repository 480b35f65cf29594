"""The Docker Engine API over a unix socket, the way gitlab-runner's client speaks it.

gitlab-runner uses the official Go client (helpers/docker/official_docker_client.go,
``client.WithAPIVersionNegotiation``): the first call pings the daemon and later paths
carry ``/v<negotiated version>``; queries are ``url.Values.Encode()``d (sorted keys,
``1`` for true); attach and exec-start are hijacked (``Connection: Upgrade``,
``Upgrade: tcp``; Docker answers 101, some daemons 200) and, without a TTY,
multiplexed in frames of an 8-byte header (stream id, 3 zero bytes, big-endian size).
Only ``unix://`` hosts: the stand-in never opens TCP connections to an engine.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from .context import Context

#: Newest API version the stand-in claims; negotiation picks min(this, daemon's).
CLIENT_API_VERSION = "1.47"
DEFAULT_HOST = "unix:///var/run/docker.sock"


class DockerError(Exception):
    """A non-2xx/304 answer from the engine, or a broken stream."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}" if status else message)
        self.status = status
        self.message = message

    @property
    def not_found(self) -> bool:
        """``errdefs.IsNotFound``."""
        return self.status == 404


def socket_path(host: str) -> str:
    """The socket path of a ``unix://`` docker host (``DOCKER_HOST`` syntax)."""
    if not host.startswith("unix://"):
        raise ValueError(f"the stand-in only speaks unix:// docker hosts, not {host!r}")
    return host.removeprefix("unix://")


def encode_query(query: Mapping[str, str | list[str]] | None) -> str:
    """``url.Values.Encode``: keys sorted, repeated keys for lists."""
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for key in sorted(query):
        value = query[key]
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    return "?" + urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("docker", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Hijacked:
    """A hijacked connection: raw stream after the HTTP answer (``types.HijackedResponse``)."""

    def __init__(self, sock: socket.socket, leftover: bytes) -> None:
        self.sock = sock
        self._buffer = leftover
        self._lock = threading.Lock()
        self._closed = False

    def write(self, data: bytes) -> None:
        """Write to the container's stdin."""
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: the container sees EOF on stdin (``HijackedResponse.CloseWrite``)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close both directions; a blocked reader returns."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _read_exact(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """Demultiplex (``stdcopy.StdCopy``): ``(1, stdout bytes)``/``(2, stderr bytes)``."""
        while True:
            header = self._read_exact(8)
            if header is None:
                return
            stream, size = header[0], struct.unpack(">I", header[4:8])[0]
            payload = self._read_exact(size)
            if payload is None:
                return
            yield stream, payload


class Pending:
    """A request whose answer is read by a background thread (see :meth:`DockerClient.begin`)."""

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self._conn = conn
        self._done = threading.Event()
        self._answer: Any = None
        self._error: Exception | None = None
        self.on_done: Callable[[], None] | None = None
        threading.Thread(target=self._read, daemon=True, name="docker-pending").start()

    def _read(self) -> None:
        try:
            response = self._conn.getresponse()
            raw = response.read()
            if response.status >= 400:
                self._error = DockerError(response.status, error_message(raw))
            else:
                self._answer = json.loads(raw) if raw.strip() else None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._error = DockerError(0, f"reading the answer: {exc}")
        finally:
            self._conn.close()
            self._done.set()
            if self.on_done is not None:
                self.on_done()

    def done(self) -> bool:
        """Whether the answer (or an error) arrived."""
        return self._done.is_set()

    def wait(self, seconds: float | None = None) -> bool:
        """Wait up to ``seconds`` for the answer."""
        return self._done.wait(seconds)

    def result(self) -> Any:
        """The decoded answer; raises :class:`DockerError`."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._answer

    def close(self) -> None:
        """Abandon the request (closes the connection; the reader ends)."""
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Engine:
    """Plain calls to one engine, addressed by ``[runners.docker] host``."""

    def __init__(
        self, host: str = DEFAULT_HOST, timeout: float | None = 300.0, ctx: Context | None = None
    ) -> None:
        self.host = host or DEFAULT_HOST
        self.path = socket_path(self.host)
        self.timeout = timeout
        self.ctx = ctx
        self.api_version: str | None = None

    def _connection(self, timeout: float | None) -> _UnixConnection:
        """A new connection; every call fails once the client's context is done, as the
        Go client's calls do with a cancelled context."""
        if self.ctx is not None:
            self.ctx.check()
        return _UnixConnection(self.path, timeout)

    def _close_on_done(self, conn: _UnixConnection) -> None:
        """Abort a long call (pull, import) when the context ends."""
        if self.ctx is None:
            return

        def abort() -> None:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        self.ctx.on_done(abort)

    def negotiate(self) -> str:
        """``NegotiateAPIVersion``: ``HEAD /_ping``, take min(daemon, client) version."""
        if self.api_version is None:
            conn = self._connection(self.timeout)
            try:
                conn.request("HEAD", "/_ping")
                response = conn.getresponse()
                response.read()
                server = response.getheader("Api-Version") or "1.24"
            finally:
                conn.close()
            client = CLIENT_API_VERSION
            self.api_version = min(server, client, key=_version_tuple)
        return self.api_version

    def url(self, path: str, query: Mapping[str, str | list[str]] | None = None) -> str:
        """Versioned path with encoded query."""
        return f"/v{self.negotiate()}{path}{encode_query(query)}"

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | list[str]] | None = None,
        body: object = None,
        data: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = -1.0,
    ) -> tuple[int, bytes]:
        """One request; JSON ``body`` or raw ``data``; returns status and body."""
        conn = self._connection(self.timeout if timeout == -1.0 else timeout)
        try:
            response = self._send(conn, method, path, query, body, data, headers)
            return response.status, response.read()
        finally:
            conn.close()

    def _send(
        self,
        conn: _UnixConnection,
        method: str,
        path: str,
        query: Mapping[str, str | list[str]] | None,
        body: object,
        data: bytes | IO[bytes] | None,
        headers: Mapping[str, str] | None,
    ) -> http.client.HTTPResponse:
        all_headers = dict(headers or {})
        payload: bytes | IO[bytes] | None = data
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        conn.request(method, self.url(path, query), body=payload, headers=all_headers)
        return conn.getresponse()

    def call(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | list[str]] | None = None,
        body: object = None,
        timeout: float | None = -1.0,
    ) -> Any:
        """A JSON call: decoded answer (``None`` when empty); errors raise :class:`DockerError`."""
        status, raw = self.request(method, path, query, body=body, timeout=timeout)
        if status >= 400:
            raise DockerError(status, error_message(raw))
        return json.loads(raw) if raw.strip() else None


class DockerClient(Engine):
    """:class:`Engine` plus the streaming calls: JSON-message streams, requests answered
    in the background, hijacked connections."""

    def detached(self) -> DockerClient:
        """The same engine without the context (cleanup runs on a fresh context:
        executors/docker/docker.go ``Cleanup``)."""
        clone = DockerClient(self.host, self.timeout)
        clone.api_version = self.api_version
        return clone

    def stream(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | list[str]] | None = None,
        data: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """A JSON-message stream (pull, import): yields messages, raises on ``error``
        (``jsonmessage.DisplayJSONMessagesStream``)."""
        conn = self._connection(None)
        self._close_on_done(conn)
        try:
            response = self._send(conn, method, path, query, None, data, headers)
            if response.status >= 400:
                raise DockerError(response.status, error_message(response.read()))
            decoder = json.JSONDecoder()
            pending = ""
            while chunk := response.read1(65536):
                pending += chunk.decode(errors="replace")
                while pending.strip():
                    text = pending.lstrip()
                    try:
                        message, end = decoder.raw_decode(text)
                    except json.JSONDecodeError:
                        break
                    pending = text[end:]
                    if isinstance(message, dict):
                        if message.get("error") or message.get("errorDetail"):
                            detail = message.get("errorDetail") or {}
                            raise DockerError(0, str(message.get("error") or detail))
                        yield message
        finally:
            conn.close()

    def begin(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | list[str]] | None = None,
        body: object = None,
    ) -> Pending:
        """Send a request now and read its JSON answer in the background (the Go client's
        ``ContainerWait`` goroutine): the request is on the wire when this returns."""
        conn = self._connection(None)
        payload = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        conn.request(method, self.url(path, query), body=payload, headers=headers)
        return Pending(conn)

    def hijack(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | list[str]] | None = None,
        body: object = None,
    ) -> Hijacked:
        """``postHijacked``: send the request with ``Upgrade: tcp``, accept 101 or 200,
        return the raw connection."""
        target = self.url(path, query)
        payload = b"" if body is None else json.dumps(body).encode()
        content_type = "text/plain" if body is None else "application/json"
        if self.ctx is not None:
            self.ctx.check()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
            f"Upgrade: tcp\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        sock.sendall(head.encode() + payload)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                sock.close()
                raise DockerError(0, f"{method} {path}: connection closed before an answer")
            received += chunk
        header, leftover = received.split(b"\r\n\r\n", 1)
        status_line = header.split(b"\r\n", 1)[0].decode(errors="replace")
        status = int(status_line.split()[1])
        if status not in (101, 200):
            sock.close()
            raise DockerError(status, error_message(leftover))
        return Hijacked(sock, leftover)


def error_message(raw: bytes) -> str:
    """The ``message`` of an engine error body, or the body itself."""
    try:
        decoded = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip()
    if isinstance(decoded, dict) and "message" in decoded:
        return str(decoded["message"])
    return raw.decode(errors="replace").strip()
