"""The company-network tests' forward proxy (tests/harness/proxy.py), run here on loopback:
it tunnels CONNECT, forwards absolute-form requests with their bodies and streams the
answers back, logs one line per request, and refuses every destination outside the
test hosts' range and loopback without connecting."""

from __future__ import annotations

import http.client
import http.server
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.harness import proxy


class Echo(http.server.BaseHTTPRequestHandler):
    """An upstream answering every method with what it received (method, path, Host,
    body); ``/slow`` waits first and answers without a length (closing the connection)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def received_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return body
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self) -> None:
        seen = {
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host"),
            "proxy_header": self.headers.get("Proxy-Connection"),
            "body": self.received_body().decode(),
        }
        if self.path == "/slow":
            time.sleep(1)
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for part in ("one ", "two ", "three"):
                self.wfile.write(part.encode())
                self.wfile.flush()
                time.sleep(0.1)
            self.close_connection = True
            return
        data = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = answer


def serve(server: http.server.HTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def upstream() -> Iterator[int]:
    """The echo server's port on 127.0.0.1."""
    yield from serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo))


class Running:
    def __init__(self, port: int, log: io.StringIO) -> None:
        self.port = port
        self.log = log

    def lines(self) -> list[str]:
        return self.log.getvalue().splitlines()

    def opener(self) -> urllib.request.OpenerDirector:
        url = f"http://127.0.0.1:{self.port}"
        return urllib.request.build_opener(urllib.request.ProxyHandler({"http": url}))


@pytest.fixture
def running() -> Iterator[Running]:
    """The proxy on a free loopback port, logging to memory."""
    log = io.StringIO()
    for port in serve(proxy.Server(("127.0.0.1", 0), proxy.Log(log))):
        yield Running(port, log)


def test_resolve_allows_only_the_test_range_and_loopback() -> None:
    """Test hosts and loopback resolve to themselves; anything else is refused."""
    assert proxy.resolve("10.199.79.2", 5001) == ("10.199.79.2", 5001)
    assert proxy.resolve("127.0.0.1", 80) == ("127.0.0.1", 80)
    for outside in ("10.200.0.1", "192.168.1.1", "8.8.8.8", "[::1]"):
        with pytest.raises(proxy.Refused):
            proxy.resolve(outside, 443)


def test_plain_http_get_is_forwarded_and_logged(running: Running, upstream: int) -> None:
    """An absolute-form GET reaches the upstream as origin-form with its Host header;
    the proxy's own headers are not passed on; one log line with the client."""
    url = f"http://127.0.0.1:{upstream}/api/v4/x?a=1"
    request = urllib.request.Request(url, headers={"Proxy-Connection": "keep-alive"})
    with running.opener().open(request, timeout=10) as response:
        seen = json.loads(response.read())
    assert seen["method"] == "GET" and seen["path"] == "/api/v4/x?a=1", seen
    assert seen["host"] == f"127.0.0.1:{upstream}" and seen["proxy_header"] is None, seen
    [line] = running.lines()
    client, method, target, verdict = line.split(" ")
    assert client.startswith("127.0.0.1:") and (method, target, verdict) == ("GET", url, "allowed")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_bodies_with_a_length_or_chunked_pass(running: Running, upstream: int, method: str) -> None:
    """A body with Content-Length and a chunked one arrive whole, on one kept-alive
    client connection (what gitlab-runner's trace and artifact uploads send)."""
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    url = f"http://127.0.0.1:{upstream}/upload"
    conn.request(method, url, body=b"x" * 100_000)
    first = json.loads(conn.getresponse().read())
    conn.request(method, url, body=iter([b"part1-", b"part2"]), encode_chunked=True)
    second = json.loads(conn.getresponse().read())
    conn.close()
    assert first["method"] == method and first["body"] == "x" * 100_000
    assert second["method"] == method and second["body"] == "part1-part2"
    assert len(running.lines()) == 2, running.lines()


def test_a_slow_answer_without_length_is_streamed_back(running: Running, upstream: int) -> None:
    """A long wait (a long poll), then a body ended by closing: the client gets it whole."""
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    conn.request("GET", f"http://127.0.0.1:{upstream}/slow")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b"one two three"
    conn.close()


def test_connect_tunnels_to_the_destination(running: Running, upstream: int) -> None:
    """CONNECT answers 200, then bytes pass both ways (here an HTTP request)."""
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        target = f"127.0.0.1:{upstream}"
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        stream = sock.makefile("rb")
        assert stream.readline().startswith(b"HTTP/1.1 200 "), "no tunnel"
        while stream.readline() not in (b"\r\n", b""):
            pass
        sock.sendall(b"GET /through HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = stream.read()
    assert b'"path": "/through"' in answer, answer
    assert running.lines()[0].split(" ")[1:] == ["CONNECT", target, "allowed"]


def test_destinations_outside_are_refused_with_403(running: Running, upstream: int) -> None:
    """Plain HTTP and CONNECT to 10.200.0.1 are answered 403 and logged as refused;
    control: the same client through the same proxy reaches the loopback upstream."""
    with running.opener().open(f"http://127.0.0.1:{upstream}/control", timeout=10) as response:
        assert json.loads(response.read())["path"] == "/control"
    with pytest.raises(urllib.error.HTTPError) as refused:
        running.opener().open("http://10.200.0.1/", timeout=10)
    assert refused.value.code == 403
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(b"CONNECT 10.200.0.1:443 HTTP/1.1\r\nHost: 10.200.0.1:443\r\n\r\n")
        status = sock.makefile("rb").readline()
    assert status.startswith(b"HTTP/1.1 403 "), status
    verdicts = [line.split(" ")[1:4] for line in running.lines()]
    assert verdicts[1:] == [["GET", "http://10.200.0.1/", "refused"],
                            ["CONNECT", "10.200.0.1:443", "refused"]], verdicts  # fmt: skip
