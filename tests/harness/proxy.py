"""A small forward proxy for the company-network tests (standard library only).

It speaks what ``HTTP_PROXY``/``HTTPS_PROXY`` clients send: ``CONNECT host:port``
(a TCP tunnel, for HTTPS) and absolute-form plain HTTP (``GET http://host:port/path``,
any method, bodies with ``Content-Length`` or chunked; the response is streamed back, so
gitlab-runner's long polls of GitLab pass through). One upstream connection per request.

It only ever connects to :data:`ALLOWED` (the test hosts' range and loopback): any
other destination, or a name resolving to one, is answered 403 without a connection.
Every request is one line in the log: ``CLIENT METHOD TARGET VERDICT`` (for example
``10.199.79.1:41234 CONNECT 10.199.79.2:5001 allowed`` or
``10.199.79.1:41236 GET http://10.200.0.1/ refused``); an upstream failure adds a line
``... failed REASON``.

Run it where it is to listen (in a test host's namespace)::

    python3 -m tests.harness.proxy --listen 10.199.79.2:3128 --log proxy.log
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import ipaddress
import select
import socket
import socketserver
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import IO, Protocol

#: The only destinations the proxy connects to.
ALLOWED = (ipaddress.IPv4Network("10.199.0.0/16"), ipaddress.IPv4Network("127.0.0.0/8"))
#: Headers that concern one hop only (RFC 9110 7.6.1), never forwarded.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authorization",
    "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade", "expect",
}  # fmt: skip
#: How long an upstream may keep a request waiting (GitLab's long polls take ~50 s).
UPSTREAM_TIMEOUT = 600
CHUNK = 64 * 1024


class Refused(Exception):
    """The destination is outside :data:`ALLOWED` (or does not resolve)."""


def resolve(host: str, port: int) -> tuple[str, int]:
    """The address to connect to for ``host:port``: every IPv4 address it resolves to
    must be in :data:`ALLOWED` (IPv6 is not spoken)."""
    try:
        found = socket.getaddrinfo(host.strip("[]"), port, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{host} does not resolve: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in found]
    for address in addresses:
        if not any(address in network for network in ALLOWED):
            named = host if host == str(address) else f"{host} ({address})"
            raise Refused(f"{named} is outside {', '.join(map(str, ALLOWED))}")
    return str(addresses[0]), port


def split_host_port(authority: str, default: int) -> tuple[str, int]:
    """``host[:port]`` (a bracketed IPv6 literal too) as host and port."""
    parsed = urllib.parse.urlsplit(f"//{authority}")
    if not parsed.hostname:
        raise Refused(f"no host in {authority!r}")
    try:
        port = parsed.port or default
    except ValueError as exc:
        raise Refused(f"bad port in {authority!r}") from exc
    return parsed.hostname, port


class Reader(Protocol):
    """What the body readers need of a stream (a file or the handler's ``rfile``)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


class Log:
    """The request log: one flushed line per entry, from any thread."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def line(self, *fields: str) -> None:
        with self.lock:
            self.stream.write(" ".join(fields) + "\n")
            self.stream.flush()


def read_chunked(stream: Reader) -> Iterator[bytes]:
    """The data of a chunked body read from ``stream`` (trailers are dropped)."""
    while True:
        size_line = stream.readline(1024)
        if not size_line:
            raise ConnectionError("the chunked body ended early")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while stream.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return
        remaining = size
        while remaining:
            data = stream.read(min(remaining, CHUNK))
            if not data:
                raise ConnectionError("the chunked body ended early")
            remaining -= len(data)
            yield data
        stream.readline(16)


def read_exactly(stream: Reader, length: int) -> Iterator[bytes]:
    """``length`` bytes of ``stream``, in pieces."""
    while length:
        data = stream.read(min(length, CHUNK))
        if not data:
            raise ConnectionError("the body ended early")
        length -= len(data)
        yield data


def tunnel(client: socket.socket, upstream: socket.socket) -> None:
    """Relay bytes both ways until both sides have finished sending."""
    sockets = [client, upstream]
    peer = {client: upstream, upstream: client}
    open_ = set(sockets)
    while open_:
        readable, _, _ = select.select(list(open_), [], [], UPSTREAM_TIMEOUT)
        if not readable:
            return
        for sock in readable:
            try:
                data = sock.recv(CHUNK)
            except OSError:
                data = b""
            if data:
                peer[sock].sendall(data)
                continue
            open_.discard(sock)
            with contextlib.suppress(OSError):
                peer[sock].shutdown(socket.SHUT_WR)


class Handler(http.server.BaseHTTPRequestHandler):
    """One client connection (HTTP/1.1, persistent)."""

    protocol_version = "HTTP/1.1"
    #: Unbuffered reads: bytes a client sends right after CONNECT stay in the socket
    #: for the tunnel instead of in a read buffer.
    rbufsize = 0
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        """No stderr chatter: :class:`Log` is the record."""

    def note(self, *fields: str) -> None:
        host, port = self.client_address[:2]
        self.server.log.line(f"{host}:{port}", self.command, self.path, *fields)

    def refuse(self, code: int, reason: str) -> None:
        body = f"pipglr test proxy: {reason}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:
        try:
            address = resolve(*split_host_port(self.path, 443))
        except Refused as exc:
            self.note("refused", str(exc))
            self.close_connection = True
            self.refuse(403, str(exc))
            return
        self.note("allowed")
        try:
            upstream = socket.create_connection(address, timeout=30)
        except OSError as exc:
            self.note("failed", str(exc))
            self.close_connection = True
            self.refuse(502, f"cannot connect to {self.path}: {exc}")
            return
        with upstream:
            upstream.settimeout(None)
            self.send_response(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True
            tunnel(self.connection, upstream)

    def forward(self) -> None:
        """An absolute-form request: pass it on, stream the response back."""
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.scheme != "http" or not url.netloc:
                raise Refused(f"not an absolute http URL: {self.path}")
            host, port = resolve(*split_host_port(url.netloc, 80))
        except Refused as exc:
            self.note("refused", str(exc))
            self.drain_body()
            self.refuse(403, str(exc))
            return
        self.note("allowed")
        target = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
        upstream = http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT)
        try:
            upstream.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    upstream.putheader(name, value)
            body = self.body()
            if body is None:
                upstream.endheaders()
            elif "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                upstream.putheader("Transfer-Encoding", "chunked")
                upstream.endheaders(body, encode_chunked=True)
            else:
                upstream.putheader("Content-Length", self.headers["Content-Length"])
                upstream.endheaders(body)
            response = upstream.getresponse()
            self.relay(response)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.note("failed", repr(exc))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.refuse(502, f"upstream failed: {exc!r}")
        finally:
            upstream.close()

    def body(self) -> Iterator[bytes] | None:
        """The request body as an iterator of pieces, or None without one."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return read_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        return read_exactly(self.rfile, length) if length else None

    def drain_body(self) -> None:
        """Read (and drop) a refused request's body, so the connection stays usable."""
        try:
            for _ in self.body() or ():
                pass
        except (ConnectionError, ValueError):
            self.close_connection = True

    def relay(self, response: http.client.HTTPResponse) -> None:
        """Send ``response`` to the client: its length as is, else chunked."""
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        length = response.getheader("Content-Length")
        bodiless = self.command == "HEAD" or response.status in (204, 304)
        chunked = not bodiless and length is None
        if length is not None:
            self.send_header("Content-Length", length)
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if bodiless:
            return
        while data := response.read1(CHUNK):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = forward


class Server(http.server.ThreadingHTTPServer):
    """The proxy server: threads per connection, its :class:`Log`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], log: Log) -> None:
        self.log = log
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse lookup of the address (``getfqdn``: ten
        seconds in a test namespace without a name server)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def main(argv: Sequence[str]) -> int:
    """``--listen ADDRESS:PORT --log FILE``: serve until terminated."""
    parser = argparse.ArgumentParser(prog="python3 -m tests.harness.proxy")
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT")
    parser.add_argument("--log", required=True, help="the request log (appended to)")
    args = parser.parse_args(argv)
    address, _, port = args.listen.rpartition(":")
    with open(args.log, "a", encoding="utf-8") as stream:
        server = Server((address, int(port)), Log(stream))
        print(f"proxy listening on {args.listen}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
