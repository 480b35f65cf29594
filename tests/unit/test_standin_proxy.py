"""The stand-in runner's proxy choice (Go's ``http.ProxyFromEnvironment``) and its
transport through a proxy: a recording proxy on 127.0.0.1 answers itself, so no other
address is ever connected to."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.standin.gitlab_runner import proxyenv
from tests.standin.gitlab_runner.transport import CLIENT_ERROR, Transport

PROXY = "http://proxy.corp:3128"


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        ("http://gitlab.corp/api", {"HTTP_PROXY": PROXY}, "proxy.corp:3128"),
        ("https://gitlab.corp/api", {"HTTP_PROXY": PROXY}, None),
        ("https://gitlab.corp/api", {"https_proxy": "proxy.corp:8080"}, "proxy.corp:8080"),
        ("http://gitlab.corp/api", {"HTTP_PROXY": "http://p:1", "http_proxy": "http://q:2"}, "p:1"),
        ("http://localhost:8080/", {"HTTP_PROXY": PROXY}, None),
        ("http://127.0.0.5/", {"HTTP_PROXY": PROXY}, None),
        ("http://gitlab.corp/", {"HTTP_PROXY": PROXY, "NO_PROXY": "*"}, None),
        ("http://gitlab.corp/", {"HTTP_PROXY": PROXY, "NO_PROXY": "corp"}, None),
        ("http://gitlab.corp/", {"HTTP_PROXY": PROXY, "NO_PROXY": ".corp"}, None),
        ("http://corp/", {"HTTP_PROXY": PROXY, "NO_PROXY": ".corp"}, "proxy.corp:3128"),
        ("http://notcorp/", {"HTTP_PROXY": PROXY, "NO_PROXY": "corp"}, "proxy.corp:3128"),
        ("http://10.1.2.3/", {"HTTP_PROXY": PROXY, "no_proxy": "10.0.0.0/8"}, None),
        ("http://10.1.2.3/", {"HTTP_PROXY": PROXY, "NO_PROXY": "10.1.2.3"}, None),
        (
            "http://10.1.2.3:81/",
            {"HTTP_PROXY": PROXY, "NO_PROXY": "10.1.2.3:80"},
            "proxy.corp:3128",
        ),
        ("http://gitlab.corp/", {"HTTP_PROXY": PROXY, "REQUEST_METHOD": "GET"}, None),
    ],
)
def test_proxy_for_follows_go(url: str, env: dict[str, str], expected: str | None) -> None:
    chosen = proxyenv.proxy_for(url, env)
    assert (chosen.netloc if chosen else None) == expected


class _Recorder(socketserver.StreamRequestHandler):
    """Records the request line; answers 204 to requests, 403 to CONNECT."""

    lines: list[str] = []

    def handle(self) -> None:
        line = self.rfile.readline().decode().strip()
        headers = []
        while (header := self.rfile.readline().decode().strip()) != "":
            headers.append(header)
        self.lines.append(line + " | " + " | ".join(h for h in headers if "Proxy" in h))
        status = "403 Forbidden" if line.startswith("CONNECT") else "204 No Content"
        self.wfile.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.lines = []
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://user:s%40cret@127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_goes_to_the_proxy_in_absolute_form(
    recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", recorder)
    answer = Transport(timeout=5).request("http://gitlab.invalid", "POST", "jobs/request", {})
    assert answer.status == 204
    line = _Recorder.lines[0]
    assert line.startswith("POST http://gitlab.invalid/api/v4/jobs/request HTTP/1.1"), line
    assert "Proxy-Authorization: Basic dXNlcjpzQGNyZXQ=" in line, line  # user:s@cret


def test_https_asks_the_proxy_for_a_tunnel(recorder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", recorder)
    answer = Transport(timeout=5).request("https://gitlab.invalid", "GET", "user")
    assert answer.status == CLIENT_ERROR  # the recorder refused the tunnel
    assert _Recorder.lines[0].startswith("CONNECT gitlab.invalid:443 HTTP/"), _Recorder.lines


def test_no_proxy_sends_the_request_direct(recorder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: the same request with its host in NO_PROXY connects to the host itself
    (the connection is intercepted here: nothing leaves the machine), the recorder sees
    nothing."""
    dialed: list[tuple[str, int]] = []

    def dial(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        dialed.append(address)
        raise ConnectionRefusedError("intercepted by the test")

    monkeypatch.setattr(socket, "create_connection", dial)
    monkeypatch.setenv("HTTP_PROXY", recorder)
    monkeypatch.setenv("NO_PROXY", "gitlab.invalid")
    answer = Transport(timeout=5).request("http://gitlab.invalid", "GET", "user")
    assert answer.status == CLIENT_ERROR
    assert dialed == [("gitlab.invalid", 80)]
    assert _Recorder.lines == []
