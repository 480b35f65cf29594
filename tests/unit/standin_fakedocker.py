"""A recording fake of the Docker Engine API on a unix socket, for the stand-in's tests.

It answers what the stand-in's docker executor asks, podman-like (``Api-Version: 1.41``,
101 on hijacked attach, 500 for exec in a stopped container), and records every request
(method, path without the ``/v1.41`` prefix, query, JSON body, headers) in order. Stage
containers read the script from stdin until EOF, then print ``ran <type>`` (or the
frames :attr:`FakeDocker.frames` gives for their type) and exit with
:attr:`FakeDocker.exit_codes` for their type (``build``/``predefined``), or 0; a wait
answers once the attached container has exited. Knobs: :attr:`FakeDocker.vanish` (the
next N containers of a type are removed right after their attach, as if someone ran
``docker rm -f``) and :attr:`FakeDocker.refuse_stdin` (containers of those types shut
their stdin at once and run until stopped: exit 137).
"""

from __future__ import annotations

import http.server
import json
import re
import socket
import socketserver
import struct
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Call:
    """One recorded request."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any = None
    #: every header line as sent: lower-cased name → values (empty values kept)
    headers: dict[str, list[str]] = field(default_factory=dict)

    def header(self, name: str) -> list[str] | None:
        """The values of one header (``None`` when it was not sent at all)."""
        return self.headers.get(name.lower())

    def __str__(self) -> str:
        query = urllib.parse.urlencode(sorted((k, v) for k, vs in self.query.items() for v in vs))
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")


@dataclass
class FakeDocker:
    """State and knobs of the fake engine."""

    images: dict[str, str] = field(default_factory=dict)
    pull_fails: bool = True
    exit_codes: dict[str, int] = field(default_factory=dict)
    #: per container type, the output frames (stream 1 stdout, 2 stderr, payload)
    frames: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    hold_build: threading.Event | None = None
    calls: list[Call] = field(default_factory=list)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: set[str] = field(default_factory=set)
    networks: dict[str, str] = field(default_factory=dict)
    stdin: dict[str, list[bytes]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    vanish: dict[str, int] = field(default_factory=dict)
    refuse_stdin: set[str] = field(default_factory=set)
    stops: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0

    def new_id(self) -> str:
        """A 64-hex id."""
        with self.lock:
            self._next += 1
            return f"{self._next:064x}"

    def paths(self) -> list[str]:
        """``METHOD path?query`` of every call, in order."""
        return [str(call) for call in self.calls]

    def find(self, container: str) -> dict[str, Any] | None:
        """A container by id or name."""
        for cid, record in self.containers.items():
            if container in (cid, record["Name"]):
                return record
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def address_string(self) -> str:
        return "fake-docker"

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        fake = self.server.fake
        parts = urllib.parse.urlsplit(self.path)
        path = re.sub(r"^/v[0-9.]+", "", parts.path)
        query = urllib.parse.parse_qs(parts.query)
        raw = self._body()
        try:
            body = json.loads(raw) if raw and raw[:1] in (b"{", b"[") else None
        except ValueError:
            body = None
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        call = Call(self.command, path, query, body, headers)
        with fake.lock:
            fake.calls.append(call)
        _route(self, fake, call, raw)

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _handle  # noqa: N815


def _route(h: _Handler, fake: FakeDocker, call: Call, raw: bytes) -> None:
    method, path = call.method, call.path
    if path == "/_ping":
        h._reply(200, None, {"Api-Version": "1.41"})
    elif path == "/info":
        h._reply(200, {"OSType": "linux", "Architecture": "x86_64", "ServerVersion": "4.3.1"})
    elif path == "/version":
        h._reply(200, {"ApiVersion": "1.41", "Version": "4.3.1"})
    elif path.startswith("/images/"):
        _images(h, fake, call, raw)
    elif path == "/volumes/create":
        name = call.body["Name"]
        fake.volumes.add(name)
        h._reply(201, {"Name": name})
    elif method == "DELETE" and path.startswith("/volumes/"):
        name = path.removeprefix("/volumes/")
        h._reply(204 if name in fake.volumes else 404, None)
        fake.volumes.discard(name)
    elif path.startswith("/networks") or path.startswith("/exec"):
        _networks(h, fake, call)
    else:
        _containers(h, fake, call)


def _images(h: _Handler, fake: FakeDocker, call: Call, raw: bytes) -> None:
    path = call.path
    if call.method == "GET" and path.endswith("/json"):
        name = path.removeprefix("/images/").removesuffix("/json")
        image_id = fake.images.get(name) or (name if name in fake.images.values() else None)
        if image_id is None:
            h._reply(404, {"message": f"no such image: {name}"})
        else:
            h._reply(200, {"Id": image_id, "RepoTags": [name], "RepoDigests": []})
    elif path == "/images/create" and "fromSrc" in call.query:
        repo, tag = call.query["repo"][0], call.query["tag"][0]
        fake.images[f"{repo}:{tag}"] = "sha256:" + "e" * 64
        h._reply(200, {"status": "sha256:" + "e" * 64, "size": len(raw)})
    elif path == "/images/create":
        if fake.pull_fails:
            h._reply(200, {"error": "pinging container registry: connection refused"})
        else:
            name = f"{call.query['fromImage'][0]}:{call.query['tag'][0]}"
            fake.images.setdefault(name, "sha256:" + "f" * 64)
            h._reply(200, {"status": "Pulled"})
    else:
        h._reply(404, {"message": "unknown image call"})


def _networks(h: _Handler, fake: FakeDocker, call: Call) -> None:
    method, path = call.method, call.path
    if path == "/networks/create":
        net_id = fake.new_id()
        fake.networks[net_id] = call.body["Name"]
        h._reply(201, {"Id": net_id})
    elif path == "/networks" and method == "GET":
        h._reply(200, [{"Id": i, "Name": n, "Containers": {}} for i, n in fake.networks.items()])
    elif path.startswith("/networks/") and method == "GET":
        h._reply(200, {"Id": path.rsplit("/", 1)[1], "Containers": {}})
    elif path.startswith("/networks/") and method == "DELETE":
        fake.networks.pop(path.rsplit("/", 1)[1], None)
        h._reply(204)
    else:
        h._reply(500, {"message": "can only create exec sessions on running containers"})


def _containers(h: _Handler, fake: FakeDocker, call: Call) -> None:
    method, path = call.method, call.path
    if path == "/containers/create":
        cid = fake.new_id()
        labels = call.body.get("Labels") or {}
        ctype = labels.get("com.gitlab.gitlab-runner.type", "")
        fake.kinds[cid] = ctype
        fake.containers[cid] = {
            "Id": cid,
            "Name": call.query["name"][0],
            "Type": ctype,
            "Config": call.body,
            "State": {"Status": "created"},
        }
        h._reply(201, {"Id": cid, "Warnings": []})
        return
    match = re.match(r"^/containers/([^/]+)(/[a-z]+)?$", path)
    record = fake.find(match.group(1)) if match else None
    action = match.group(2) if match else None
    if record is None:
        h._reply(404, {"message": "no such container"})
    elif method == "DELETE":
        fake.containers.pop(record["Id"], None)
        h._reply(204)
    elif action == "/json":
        h._reply(
            200,
            {
                "Id": record["Id"],
                "Name": record["Name"],
                "State": record["State"],
                "Config": record["Config"],
                "NetworkSettings": {"IPAddress": "10.88.0.9"},
            },
        )
    elif action == "/start":
        record["State"] = {"Status": "running"}
        h._reply(204)
    elif action == "/attach":
        _attach(h, fake, record)
    elif action == "/wait":
        if "Exited" in record:
            record["Exited"].wait(15)
        record["State"] = {"Status": "exited"}
        code = record.get("ExitCode", fake.exit_codes.get(record["Type"], 0))
        h._reply(200, {"StatusCode": code, "Error": None})
    elif action == "/stop":
        fake.stops.setdefault(record["Id"], threading.Event()).set()
        h._reply(304)
    elif action == "/logs":
        h._reply(200, None)
    else:
        h._reply(500, {"message": "can only create exec sessions on running containers"})


def _attach(h: _Handler, fake: FakeDocker, record: dict[str, Any]) -> None:
    """Hijack: 101, read stdin to EOF, answer the type's frames (one stdout frame
    ``ran <type>`` by default), close (see the knobs)."""
    kind = record["Type"]
    record["Exited"] = threading.Event()
    with fake.lock:  # removed before the client can send its start
        vanishing = fake.vanish.get(kind, 0) > 0
        if vanishing:
            fake.vanish[kind] -= 1
            fake.containers.pop(record["Id"], None)
    h.wfile.write(
        b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
        b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    )
    h.wfile.flush()
    try:
        if not vanishing:
            _stage(h, fake, record)
    finally:
        record["Exited"].set()
        h.close_connection = True


def _stage(h: _Handler, fake: FakeDocker, record: dict[str, Any]) -> None:
    if record["Type"] in fake.refuse_stdin:
        h.connection.shutdown(socket.SHUT_RD)
        stopped = fake.stops.setdefault(record["Id"], threading.Event()).wait(10)
        record["ExitCode"] = 137 if stopped else 0
        payload = b"stopped\n" if stopped else b"ran unstopped\n"
        h.wfile.write(struct.pack(">BxxxI", 1, len(payload)) + payload)
        return
    data = b""
    while chunk := h.connection.recv(65536):
        data += chunk
    fake.stdin.setdefault(record["Id"], []).append(data)
    if record["Type"] == "build" and fake.hold_build is not None:
        fake.hold_build.wait(10)
    record["ExitCode"] = fake.exit_codes.get(record["Type"], 0)
    default = [(1, f"ran {record['Type']}\n".encode())]
    for stream, payload in fake.frames.get(record["Type"], default):
        h.wfile.write(struct.pack(">BxxxI", stream, len(payload)) + payload)
    h.wfile.flush()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    fake: FakeDocker

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up early (abandoned waits) are not errors here."""


@contextmanager
def serving(socket_path: Path, fake: FakeDocker) -> Iterator[FakeDocker]:
    """Serve ``fake`` on ``socket_path`` while the block runs."""
    server = _Server(str(socket_path), _Handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
