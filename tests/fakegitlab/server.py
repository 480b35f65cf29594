"""HTTP plumbing: a threading HTTP/1.1 server routing to the API and control endpoints.

gitlab-runner's Go client keeps connections alive, so the handler speaks HTTP/1.1,
always reads the whole request body (Content-Length or chunked) and always sends
Content-Length (except on 204, which has no body by definition).
"""

from __future__ import annotations

import datetime
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import api, control
from .state import State
from .wire import BadRequest, Request, Response, Route, json_response

ROUTES: list[Route] = api.ROUTES + control.ROUTES
#: Request headers kept verbatim in the request log; bodies are kept too (no redaction).
MAX_LOGGED_BODY = 64 * 1024


def dispatch(state: State, request: Request) -> Response:
    """Find the route for a request and answer it (404 when none matches)."""
    for candidate in ROUTES:
        match = candidate.pattern.fullmatch(request.path)
        if match and candidate.method == request.method:
            try:
                return candidate.handler(state, request, match)
            except BadRequest as exc:
                return json_response(400, {"message": f"400 Bad request - {exc}"})
    return json_response(404, {"message": "404 Not Found"})


def _logged_body(request: Request) -> Any:
    if not request.body:
        return None
    try:
        return request.json()
    except BadRequest:
        return request.body[:MAX_LOGGED_BODY].decode("utf-8", "replace")


class Handler(BaseHTTPRequestHandler):
    """One connection; each request goes through :func:`dispatch`."""

    protocol_version = "HTTP/1.1"
    server: Server

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers up to the blank line
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        started = time.monotonic()
        parts = urlsplit(self.path)
        request = Request(
            self.command,
            parts.path,
            parse_qs(parts.query),
            dict(self.headers.items()),
            self._read_body(),
        )
        try:
            response = dispatch(self.server.state, request)
        except Exception:  # a bug here must not kill the connection silently
            traceback.print_exc(file=sys.stderr)
            response = json_response(500, {"message": "500 Internal Server Error"})
        if not request.path.startswith("/_pipglr/"):
            self.server.state.request_log.add(
                {
                    "at": time.time(),
                    "method": request.method,
                    "path": request.path,
                    "query": request.query,
                    "headers": dict(request.headers),
                    "body": _logged_body(request),
                    "status": response.status,
                    "response_headers": response.headers,
                    "duration": round(time.monotonic() - started, 6),
                }
            )
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204:
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.status != 204 and self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        """One line per request on stderr when asked to log (not for control GETs/polls)."""
        polling = self.command == "GET" and self.path.startswith("/_pipglr/")
        if self.server.access_log and not polling:
            now = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S.%f")[:-3]
            sys.stderr.write(f"fakegitlab {now} {self.address_string()} {format % args}\n")


class Server(ThreadingHTTPServer):
    """The HTTP server carrying the shared :class:`State`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: State, *, access_log: bool) -> None:
        super().__init__(address, Handler)
        self.state = state
        self.access_log = access_log


def serve(host: str, port: int, state: State, *, access_log: bool = True) -> None:
    """Serve until SIGTERM or SIGINT (the ``serve`` command)."""
    server = Server((host, port), state, access_log=access_log)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound_host, bound_port = server.server_address[:2]
    print(
        f"fakegitlab listening on http://{bound_host!s}:{bound_port}", file=sys.stderr, flush=True
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


@dataclass
class Running:
    """A server running in a thread: its URL and its state."""

    url: str
    state: State
    server: Server


@contextmanager
def running(state: State | None = None, host: str = "127.0.0.1") -> Iterator[Running]:
    """Run a quiet server on an ephemeral port in a thread (for unit tests)."""
    state = state if state is not None else State()
    server = Server((host, 0), state, access_log=False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield Running(f"http://{host}:{server.server_address[1]}", state, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
