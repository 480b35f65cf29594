"""A fake podman-py client for the custom-executor driver's unit tests: the managers
and low-level API calls the driver uses (pipglr/guest/job*.py, executor.py), with
state in plain dicts and every call logged in ``calls``."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from typing import Any

from podman.errors import APIError, ImageNotFound, NotFound


def frame(stream: int, data: bytes) -> bytes:
    """One stdcopy frame."""
    return struct.pack(">BxxxL", stream, len(data)) + data


class Raw:
    """urllib3's response body: ``read1`` gives what has arrived, b"" at the end."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.reads = chunks, 0

    def read1(self, size: int = -1) -> bytes:
        self.reads += 1
        return self.chunks.pop(0) if self.chunks else b""


class Response:
    def __init__(self, body: Any = None, status: int = 200, chunks: Any = ()) -> None:
        self.body, self.status_code, self.chunks = body, status, chunks

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise APIError(str(self.body))

    def json(self) -> Any:
        return self.body

    @property
    def raw(self) -> Raw:
        return Raw(list(self.chunks))

    def iter_content(self, chunk_size: int | None = None) -> Iterator[bytes]:
        yield from self.chunks

    def iter_lines(self) -> Iterator[bytes]:
        yield from self.chunks


class Obj:
    """A container, network, volume or image."""

    def __init__(self, client: FakeClient, kind: str, name: str, attrs: dict[str, Any]) -> None:
        self.client, self.kind, self.name, self.attrs = client, kind, name, attrs
        self.id = name
        self.archives: list[tuple[str, bytes]] = []

    def remove(self, **kw: Any) -> None:
        self.client.calls.append(("remove", self.kind, self.name))
        del self.client.store[self.kind][self.name]

    def start(self) -> None:
        self.client.calls.append(("start", self.kind, self.name))
        self.attrs["State"] = "running"

    def kill(self) -> None:
        """SIGKILL; podman answers 409 for a container that is not running."""
        if self.attrs.get("State") != "running":
            raise APIError("container state improper")
        self.client.calls.append(("kill", self.kind, self.name))
        self.attrs["State"] = "exited"

    def put_archive(self, path: str, data: bytes) -> bool:
        self.archives.append((path, data))
        return True

    def tag(self, repo: str, tag: str) -> bool:
        self.client.store["image"][f"{repo}:{tag}"] = self
        return True

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.attrs.get("labels") or {})


class Manager:
    def __init__(self, client: FakeClient, kind: str) -> None:
        self.client, self.kind = client, kind

    def get(self, name: str) -> Obj:
        try:
            return self.client.store[self.kind][name]
        except KeyError:
            # podman-py's images.get raises ImageNotFound, which is no NotFound.
            error = ImageNotFound if self.kind == "image" else NotFound
            raise error(f"no such {self.kind} {name}") from None

    def create(self, name: str | None = None, **kw: Any) -> Obj:
        name = name or kw["name"]
        self.client.calls.append(("create", self.kind, name))
        if name in self.client.store[self.kind]:
            raise APIError(f"{self.kind} {name} exists")
        made = Obj(self.client, self.kind, name, dict(kw))
        self.client.store[self.kind][name] = made
        return made

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[Obj]:
        key, _, value = (filters or {}).get("label", "").partition("=")
        found = list(self.client.store[self.kind].values())
        return [o for o in found if not key or o.labels.get(key) == value]

    def exists(self, name: str) -> bool:
        return name in self.client.store[self.kind]

    def load(self, data: bytes) -> Iterator[Obj]:
        self.client.calls.append(("load", "image", str(len(data))))
        return iter([self.create("localhost/gitlab-runner-helper-prebuilt:abc")])


class Api:
    """``client.api``: exec and pull as the driver calls them."""

    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.execs: dict[str, dict[str, Any]] = {}

    def post(self, path: str, **kw: Any) -> Response:
        self.client.calls.append(("post", "api", path))
        parts = path.strip("/").split("/")
        if parts[0] == "containers" and parts[2] == "exec":
            if parts[1] not in self.client.store["container"]:
                return Response({"cause": "no such container"}, 404)
            exec_id = f"exec{len(self.execs)}"
            argv = json.loads(kw["data"])["Cmd"]
            self.execs[exec_id] = {"container": parts[1], "argv": argv}
            return Response({"Id": exec_id})
        if parts[0] == "exec" and parts[2] == "start":
            run = self.execs[parts[1]]
            output, code = self.client.exec_results.get(run["container"], ([], 0))
            run["code"] = code
            return Response(chunks=output() if callable(output) else output)
        if path == "/images/pull":
            ref = kw["params"]["reference"]
            self.client.pulls.append((ref, kw.get("headers", {}).get("X-Registry-Auth")))
            if ref in self.client.pull_errors:
                return Response(chunks=[json.dumps({"error": self.client.pull_errors[ref]})])
            self.client.store["image"][ref] = Obj(self.client, "image", ref, {})
            return Response(chunks=[json.dumps({"id": "0123456789abcdef"}).encode()])
        raise AssertionError(f"unexpected POST {path}")

    def get(self, path: str, **kw: Any) -> Response:
        parts = path.strip("/").split("/")
        run = self.execs[parts[1]]
        return Response({"Running": False, "ExitCode": run.get("code")})


class FakeClient:
    def __init__(self) -> None:
        self.store: dict[str, dict[str, Obj]] = {
            k: {} for k in ("container", "network", "volume", "image")
        }
        self.calls: list[tuple[str, str, str]] = []
        self.pulls: list[tuple[str, str | None]] = []
        self.pull_errors: dict[str, str] = {}
        #: container → (frames or a callable giving them, exit code) of the next exec.
        self.exec_results: dict[str, tuple[Any, int]] = {}
        self.containers = Manager(self, "container")
        self.networks = Manager(self, "network")
        self.volumes = Manager(self, "volume")
        self.images = Manager(self, "image")
        self.api = Api(self)

    def add(self, kind: str, name: str, labels: dict[str, str] | None = None) -> Obj:
        made = Obj(self, kind, name, {"labels": labels or {}})
        self.store[kind][name] = made
        return made

    def names(self, kind: str) -> set[str]:
        return set(self.store[kind])


Writer = Callable[[int, bytes], None]
