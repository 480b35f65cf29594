"""Maintained job images (pipglr.guest.maintained, maintainedlist): definitions, what
is built when (as ``invoke chain`` decides), the listing, the units, without podman:
a fake podman-py client holds the images and a fake runner "builds" into it."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pipglr import chain, layout
from pipglr.build import units
from pipglr.errors import EngineError, UsageError
from pipglr.guest import cli, lru, maintained, maintainedlist
from pipglr.guest.lastuse import LastUse
from pipglr.settings import BuildSettings
from tests.unit.fakepodmanpy import FakeClient

BASE = "docker.io/library/debian:trixie-slim"


def define(root: Path, name: str, containerfile: str, depends: str | None = None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "Containerfile").write_text(containerfile)
    if depends is not None:
        (path / "depends").write_text(depends)
    return path


def two(root: Path) -> Path:
    """tools on the Debian base, tools-py on tools, lone on alpine."""
    define(root, "tools", f"FROM {BASE}\nRUN apt-get update\n")
    define(root, "tools-py", "FROM localhost/tools\nRUN true\n")
    define(root, "lone", "FROM docker.io/library/alpine:3\n")
    return root


class Podman:
    """The fake podman CLI: ``build`` tags a new image (id ``NAME-N``) with the labels
    given, ``pull`` of a base gives it a new id; a name in ``fail`` fails its build."""

    def __init__(self, client: FakeClient, fail: Sequence[str] = ()) -> None:
        self.client, self.fail, self.argvs, self.count = client, set(fail), [], 0
        self.envs: list[Mapping[str, str]] = []

    def __call__(self, argv: Sequence[str], env: Mapping[str, str]) -> int:
        self.argvs.append(list(argv))
        self.envs.append(env)
        self.count += 1
        if argv[1] == "pull":
            image(self.client, argv[2], f"{argv[2]}-pulled-{self.count}")
            return 0
        assert argv[:2] == ["podman", "build"], argv
        tag = argv[argv.index("--tag") + 1]
        if tag in self.fail:
            return 1
        labels = dict(a.removeprefix("--label=").split("=", 1) for a in argv
                      if a.startswith("--label="))  # fmt: skip
        image(self.client, tag, f"{tag}-{self.count}", labels)
        return 0


def image(client: FakeClient, ref: str, image_id: str, labels: dict[str, str] | None = None,
          created: str = "2026-12-01T10:00:00.5Z") -> None:  # fmt: skip
    made = client.add("image", ref, labels)
    made.id = image_id
    made.attrs |= {"Id": image_id, "Created": created}


def build(root: Path, client: FakeClient, podman: Podman, names: Sequence[str] = (),
          pull: bool = False) -> tuple[list[chain.Step], list[str], list[str]]:  # fmt: skip
    said: list[str] = []
    loaded = maintained.load(root)
    assert loaded is not None
    steps, failed = maintained.build(
        loaded, maintained.lookup_in(client), names, pull, podman, said.append
    )
    return steps, failed, said


def built(steps: Sequence[chain.Step]) -> list[str]:
    return [s.name for s in steps if s.rebuild]


def test_definitions_load_as_localhost_names_with_their_chain(tmp_path: Path) -> None:
    loaded = maintained.load(two(tmp_path))
    assert loaded is not None
    assert loaded.order == ("lone", "tools", "tools-py")
    assert loaded.definitions["tools-py"].image == "localhost/tools-py:latest"
    assert loaded.parents["tools-py"] == ("tools",)
    assert maintained.external_bases(loaded, "tools-py") == (BASE,)


def test_no_directory_or_no_definition_is_none(tmp_path: Path) -> None:
    assert maintained.load(tmp_path / "missing") is None
    (tmp_path / "notes").mkdir()
    assert maintained.load(tmp_path) is None


@pytest.mark.parametrize(
    ("name", "extra", "message"),
    [
        ("img", "build", r"^img/build: maintained images are built in the image from"),
        ("img", "image", r"^img/image: .*remove img/image$"),
        ("img", "sources", r"^img/sources: "),
        ("Img", None, r"^'Img' is no image name"),
        ("-x", None, r"^'-x' is no image name"),
    ],
)
def test_what_a_maintained_definition_may_not_be_is_refused(
    tmp_path: Path, name: str, extra: str | None, message: str
) -> None:
    path = define(tmp_path, name, f"FROM {BASE}\n")
    if extra:
        (path / extra).write_text("x\n")
    with pytest.raises(UsageError, match=message):
        maintained.load(tmp_path)


def test_a_build_file_definition_without_containerfile_is_refused(tmp_path: Path) -> None:
    (tmp_path / "scripted").mkdir()
    (tmp_path / "scripted" / "build").write_text("invoke base --tag {image}\n")
    with pytest.raises(UsageError, match=r"^scripted/build: .*NAME/Containerfile"):
        maintained.load(tmp_path)


def test_first_build_makes_all_parents_first_then_nothing_is_due(tmp_path: Path) -> None:
    """Missing images are built parents first, labelled with the maintained name and
    the chain's record; run again, nothing is due."""
    client = FakeClient()
    image(client, f"{BASE}", "debian-1")
    image(client, "docker.io/library/alpine:3", "alpine-1")
    podman = Podman(client)
    steps, failed, said = build(two(tmp_path), client, podman)
    assert built(steps) == ["lone", "tools", "tools-py"] and failed == []
    tags = [a[a.index("--tag") + 1] for a in podman.argvs]
    assert tags == ["localhost/lone:latest", "localhost/tools:latest", "localhost/tools-py:latest"]
    labels = client.images.get("localhost/tools-py:latest").labels
    assert labels[layout.MAINTAINED_LABEL] == "tools-py"
    assert chain.parse_parents(labels[chain.LABEL_PARENTS]) == {
        "localhost/tools:latest": client.images.get("localhost/tools:latest").id
    }
    assert all("--no-cache" not in a for a in podman.argvs)
    assert podman.envs[0]["XDG_RUNTIME_DIR"] == str(layout.PODMAN_RUNTIME_DIR)
    assert said[0].startswith("1. lone (localhost/lone:latest): rebuild")
    again, _, _ = build(tmp_path, client, Podman(client))
    assert built(again) == []


def test_a_name_is_rebuilt_fresh_and_its_children_follow(tmp_path: Path) -> None:
    client = FakeClient()
    image(client, BASE, "debian-1")
    image(client, "docker.io/library/alpine:3", "alpine-1")
    build(two(tmp_path), client, Podman(client))
    podman = Podman(client)
    steps, _, _ = build(tmp_path, client, podman, ["tools"])
    assert built(steps) == ["tools", "tools-py"]
    assert "--no-cache" in podman.argvs[0] and "--no-cache" not in podman.argvs[1]
    assert dict(zip((s.name for s in steps), (s.reasons for s in steps), strict=True))[
        "tools-py"
    ] == ("parent tools is rebuilt",)
    with pytest.raises(UsageError, match="no definition nope"):
        build(tmp_path, client, podman, ["nope"])


def test_pulling_a_newer_base_makes_its_images_due(tmp_path: Path) -> None:
    """--pull pulls the external bases (never a localhost/ one); a base that changed
    makes its chain due, the others stay."""
    client = FakeClient()
    image(client, BASE, "debian-1")
    image(client, "docker.io/library/alpine:3", "alpine-1")
    image(client, "localhost/mine:latest", "mine-1")
    define(two(tmp_path), "local", "FROM localhost/mine\n")
    build(tmp_path, client, Podman(client))

    class OnlyDebianChanged(Podman):
        def __call__(self, argv: Sequence[str], env: Mapping[str, str]) -> int:
            if argv[1] == "pull" and "alpine" in argv[2]:
                self.argvs.append(list(argv))
                return 0  # the same image: nothing new
            return super().__call__(argv, env)

    podman = OnlyDebianChanged(client)
    steps, _, _ = build(tmp_path, client, podman, pull=True)
    pulled = [a[2] for a in podman.argvs if a[1] == "pull"]
    assert pulled == ["docker.io/library/alpine:3", BASE]
    assert built(steps) == ["tools", "tools-py"]


def test_a_failed_build_skips_its_children_only_and_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = FakeClient()
    image(client, BASE, "debian-1")
    image(client, "docker.io/library/alpine:3", "alpine-1")
    monkeypatch.setattr(layout, "MAINTAINED_DIR", two(tmp_path / "defs"))
    podman = Podman(client, fail=["localhost/tools:latest"])
    said: list[str] = []
    with pytest.raises(EngineError) as info:
        maintained.main_build([], client, podman, said.append, tmp_path / "lock")
    assert str(info.value) == "maintained images: built lone; failed tools, tools-py"
    assert "skipping tools-py: its parent tools failed to build" in said
    assert [a[a.index("--tag") + 1] for a in podman.argvs] == [
        "localhost/lone:latest", "localhost/tools:latest",
    ]  # fmt: skip


def test_a_rebuild_moves_the_tag_and_removes_nothing(tmp_path: Path) -> None:
    """The previous image stays for a job that runs on it: only build and pull run,
    and nothing is removed through the API."""
    client = FakeClient()
    image(client, BASE, "debian-1")
    image(client, "docker.io/library/alpine:3", "alpine-1")
    build(two(tmp_path), client, Podman(client))
    before = client.images.get("localhost/tools:latest").id
    podman = Podman(client)
    build(tmp_path, client, podman, ["tools"], pull=True)
    assert client.images.get("localhost/tools:latest").id != before
    assert {a[1] for a in podman.argvs} == {"build", "pull"}
    assert not [c for c in client.calls if c[0] == "remove"]


def test_main_build_options_and_an_empty_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layout, "MAINTAINED_DIR", tmp_path / "none")
    assert maintained.main_build([], FakeClient(), lock=tmp_path / "l") == (
        "maintained images: none defined (`pipglr images add DIR`)"
    )
    with pytest.raises(UsageError, match="no maintained image tools"):
        maintained.main_build(["tools"], FakeClient(), lock=tmp_path / "l")
    with pytest.raises(UsageError, match="unknown option --force"):
        maintained.main_build(["--force"], FakeClient(), lock=tmp_path / "l")
    with pytest.raises(UsageError, match="not both"):
        maintained.main_build(["--all-due", "tools"], FakeClient(), lock=tmp_path / "l")


def test_a_second_build_waits_for_the_first(tmp_path: Path) -> None:
    lock, said, order = tmp_path / "lock", [], []
    with maintained.locked(lock, said.append):

        def second() -> None:
            with maintained.locked(lock, said.append):
                order.append("second")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]
    assert said == ["another images-build is running: waiting for it to finish"]


def test_the_list_shows_id_built_base_last_use_and_due(tmp_path: Path) -> None:
    client = FakeClient()
    image(client, BASE, "debian-1")
    image(client, "docker.io/library/alpine:3", "alpine-1")
    podman = Podman(client, fail=["localhost/lone:latest"])
    build(two(tmp_path), client, podman)
    (tmp_path / "tools-py" / "Containerfile").write_text("FROM localhost/tools\nRUN false\n")
    book = LastUse(tmp_path / "book.json")
    tools_id = client.images.get("localhost/tools:latest").id
    book.touch(lru.IMAGE, tools_id, 1_800_000_000.0)
    loaded = maintained.load(tmp_path)
    assert loaded is not None
    items = {i["name"]: i for i in maintainedlist.entries(loaded, client, book)}
    assert items["tools"] == {
        "name": "tools", "image": "localhost/tools:latest", "id": tools_id,
        "built": 1_796_119_200.5, "bases": [BASE], "last_use": 1_800_000_000.0, "due": [],
    }  # fmt: skip
    assert items["lone"]["id"] is None and items["lone"]["built"] is None
    assert items["lone"]["due"] == ["localhost/lone:latest does not exist"]
    assert items["tools-py"]["bases"] == [BASE] and items["tools-py"]["last_use"] is None
    assert items["tools-py"]["due"][0].startswith("tools-py/ changed since")
    text = maintainedlist.render(list(items.values())).splitlines()
    assert text[0].split() == ["NAME", "ID", "BUILT", "(UTC)", "LAST", "USE", "(UTC)", "BASE"]
    assert (
        text[1].split()[:2] == ["lone", "-"]
        and text[2] == "    due: localhost/lone:latest does not exist"
    )
    assert text[3].split() == ["tools", tools_id[:12], "2026-12-01", "10:00", "2027-01-15",
                               "08:00", BASE]  # fmt: skip


def test_images_list_without_definitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(layout, "MAINTAINED_DIR", tmp_path)
    assert cli.main(["images-list"]) == 0
    assert (
        capsys.readouterr().out == "no maintained images: add some with `pipglr images add DIR`\n"
    )
    assert cli.main(["images-list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == []


def test_images_build_refuses_another_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As root the podman CLI would build into root's storage, which no job sees."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert cli.main(["images-build"]) == 2
    assert "run it as that user (podman exec --user podman" in capsys.readouterr().err


def test_the_weekly_timer_is_enabled_and_its_service_builds_as_podman() -> None:
    context = units.UnitContext.from_settings(BuildSettings())
    assert layout.IMAGES_TIMER_UNIT in units.ENABLED_UNITS
    assert {layout.IMAGES_TIMER_UNIT, layout.IMAGES_SERVICE_UNIT} <= set(layout.ALL_UNITS)
    timer = units.render(units.Templates.IMAGES_TIMER, context)
    assert "OnCalendar=weekly\nPersistent=true\nRandomizedDelaySec=" in timer.replace(
        "# A week missed while the container was down is caught up at its next start.\n", ""
    )
    service = units.render(units.Templates.IMAGES_SERVICE, context)
    lines = (
        "Type=oneshot",
        "User=podman",
        f"ConditionDirectoryNotEmpty={layout.MAINTAINED_DIR}",
        "ExecStart=/usr/bin/python3 -m pipglr.guest images-build --all-due --pull",
    )
    for line in lines:
        assert f"\n{line}\n" in service, line
    requires = next(ln for ln in service.splitlines() if ln.startswith("Requires="))
    assert {layout.EGRESS_UNIT, layout.NETWORK_UNIT} <= set(requires[9:].split())
