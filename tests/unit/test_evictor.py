"""The evictor's round, its event booking, settings and book (pipglr.guest.evictor,
lastuse, inventory, prune) without podman: a scripted inventory stands in for the API."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any, cast

import pytest
from podman.errors import APIError

from pipglr import layout
from pipglr.errors import UsageError
from pipglr.guest import evictor, inventory, lru, prune, statsbook, storagereport
from pipglr.guest.inventory import Inventory, Usage, Use, epoch
from pipglr.guest.lastuse import LastUse

NOW = 1_000_000.0
HOUR = 3600.0
SETTINGS = evictor.Settings.from_env({"PIPGLR_EVICT_MIN_AGE": "1h"}, "300")


class ScriptedInventory(Inventory):
    """Images of given sizes; removing one frees its size. ``start_on`` makes a
    container appear using that image when its in-use check is asked (a job started
    while the round ran)."""

    def __init__(self, items: list[lru.Item], start_on: str | None = None) -> None:
        super().__init__(client=cast(Any, None), cache_root=Path("/cache"))
        self.present = {i.key: i for i in items}
        self.started: set[str] = set()
        self.start_on = start_on
        self.removed: list[str] = []

    def usage(self) -> Usage:
        by_kind = {k: sum(i.size for i in self.present.values() if i.kind == k) for k in
                   (lru.IMAGE, lru.VOLUME, lru.CACHE)}  # fmt: skip
        return Usage(by_kind[lru.IMAGE], by_kind[lru.VOLUME], by_kind[lru.CACHE], 10_000, 0)

    def uses(self) -> list[Use]:
        return [Use("c", key, frozenset(), frozenset()) for key in self.started]

    def items(self, book: LastUse, uses: Any) -> list[lru.Item]:
        return list(self.present.values())

    def in_use(self, item: lru.Item) -> bool:
        if item.key == self.start_on:
            self.started.add(item.key)
        return item.key in self.started

    def remove(self, item: lru.Item) -> str | None:
        self.removed.append(item.key)
        del self.present[item.key]
        return None


def img(key: str, age_h: float, size: int = 100, **kw: Any) -> lru.Item:
    return lru.Item(lru.IMAGE, key, size, NOW - age_h * HOUR, (f"localhost/{key}:1",), **kw)


def run_round(inv: ScriptedInventory, tmp_path: Path, book: LastUse | None = None) -> list[str]:
    lines: list[str] = []
    book = book or LastUse(tmp_path / "book.json")
    evictor.evict(inv, book, SETTINGS, NOW, lines.append)
    return lines


def test_evicts_least_recently_used_until_under_the_cap(tmp_path: Path) -> None:
    inv = ScriptedInventory([img("a", 5), img("b", 9), img("c", 7), img("d", 3, in_use=True)])
    lines = run_round(inv, tmp_path)
    assert inv.removed == ["b"]  # 400 -> 300: at the cap
    assert lines[0].startswith("nested storage 400 bytes over the cap of 300")
    assert lines[-1] == "nested storage now 300 bytes (cap 300)"


def test_nothing_happens_under_the_cap(tmp_path: Path) -> None:
    inv = ScriptedInventory([img("a", 5), img("b", 9)])
    assert run_round(inv, tmp_path) == []
    assert inv.removed == []


def test_a_container_started_during_the_round_protects_its_image(tmp_path: Path) -> None:
    inv = ScriptedInventory([img("a", 5), img("b", 9), img("c", 7), img("e", 6)], start_on="b")
    lines = run_round(inv, tmp_path)
    assert inv.removed == ["c"]  # b (oldest) was about to go when a job took it
    assert "kept image localhost/b:1: a container started using it" in lines


def test_a_use_booked_during_the_round_protects_it(tmp_path: Path) -> None:
    book = LastUse(tmp_path / "book.json")
    book.touch(lru.IMAGE, "b", NOW + 1)  # the watcher saw a pull just now
    inv = ScriptedInventory([img("a", 5), img("b", 9), img("c", 7), img("e", 6)])
    lines = run_round(inv, tmp_path, book)
    assert inv.removed == ["c"]
    assert "kept image localhost/b:1: used while this round ran" in lines


def test_the_book_survives_a_restart_and_ignores_older_times(tmp_path: Path) -> None:
    path = tmp_path / "vol" / ".pipglr-last-use.json"
    book = LastUse(path)
    book.touch(lru.IMAGE, "sha", 200.0)
    book.touch(lru.IMAGE, "sha", 100.0)
    book.touch(lru.VOLUME, "runner-v", 50.0)
    assert book.save() is True
    assert book.save() is False  # nothing changed
    again = LastUse(path)
    assert again.get(lru.IMAGE, "sha") == 200.0
    again.forget_missing(lru.VOLUME, set())
    again.save()
    assert LastUse(path).get(lru.VOLUME, "runner-v") is None


def test_an_unreadable_book_counts_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    path.write_text("{not json")
    assert LastUse(path).get(lru.IMAGE, "x") is None


class FakeContainers:
    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs

    def get(self, cid: str) -> Any:
        if cid != self.attrs["Id"]:
            raise KeyError(cid)
        return self


class FakeClient:
    def __init__(self, attrs: dict[str, Any]) -> None:
        self.containers = FakeContainers(attrs)


CONTAINER = {
    "Id": "c1",
    "Image": "sha-img",
    "Mounts": [
        {"Type": "volume", "Name": "runner-abc-project-11-concurrent-0-cache-3c3f"},
        {"Type": "bind", "Source": "/cache/runner-abc-project-11-concurrent-0/0a1b"},
        {"Type": "bind", "Source": "/etc/hosts"},
    ],
}


def test_events_book_uses_of_images_volumes_and_caches(tmp_path: Path) -> None:
    inv = Inventory(client=cast(Any, FakeClient(CONTAINER)), cache_root=Path("/cache"))
    book = LastUse(tmp_path / "b.json")
    created = {"Type": "container", "Action": "create", "Actor": {"ID": "c1"}, "timeNano": 5e9}
    assert evictor.book_uses(book, inv, created) is True
    assert book.get(lru.IMAGE, "sha-img") == 5.0
    assert book.get(lru.VOLUME, "runner-abc-project-11-concurrent-0-cache-3c3f") == 5.0
    assert book.get(lru.CACHE, "runner-abc-project-11-concurrent-0") == 5.0
    built = {"Type": "image", "Action": "build", "Actor": {"ID": "", "Attributes": {"name": "i2"}},
             "timeNano": 6e9}  # fmt: skip
    assert evictor.book_uses(book, inv, built) is True
    assert book.get(lru.IMAGE, "i2") == 6.0
    died = {"Type": "container", "Action": "died", "Actor": {"ID": "c1"}, "timeNano": 7e9}
    assert evictor.book_uses(book, inv, died) is False
    assert book.get(lru.IMAGE, "sha-img") == 5.0
    removed = {"Type": "image", "Action": "remove", "Actor": {"ID": "i2"}, "timeNano": 8e9}
    evictor.book_uses(book, inv, removed)
    assert book.get(lru.IMAGE, "i2") == 6.0
    gone = {"Type": "container", "Action": "start", "Actor": {"ID": "other"}, "timeNano": 9e9}
    assert evictor.book_uses(book, inv, gone) is False


def test_export_env_copies_only_the_storage_settings(tmp_path: Path) -> None:
    environ = (b"PATH=/usr/bin\0PIPGLR_STORAGE_THRESHOLD=2GB\0PIPGLR_EVICT_MIN_AGE=0\0"
               b"PIPGLR_EGRESS_ALLOW=10.0.0.1\0container=podman\0")  # fmt: skip
    target = tmp_path / "run" / "storage.env"
    said = evictor.export_env(environ, target)
    assert target.read_text() == "PIPGLR_STORAGE_THRESHOLD=2GB\nPIPGLR_EVICT_MIN_AGE=0\n"
    assert evictor.read_env(target) == {
        "PIPGLR_STORAGE_THRESHOLD": "2GB", "PIPGLR_EVICT_MIN_AGE": "0",
    }  # fmt: skip
    assert "PIPGLR_STORAGE_THRESHOLD=2GB" in said
    assert evictor.read_env(tmp_path / "missing") == {}


def test_settings_defaults_and_overrides() -> None:
    default = evictor.Settings.from_env({}, "25%")
    assert default.policy(4000).threshold == 1000
    assert default.min_age == 3600 and default.interval == 300 and default.enabled
    assert [p.pattern for p in default.keep] == ["gitlab-runner-helper"]
    assert default.policy(4000).cache_threshold is None
    env = {
        "PIPGLR_STORAGE_THRESHOLD": "1GB", "PIPGLR_CACHE_THRESHOLD": "10%",
        "PIPGLR_EVICT_KEEP": "^localhost/keep", "PIPGLR_EVICTOR": "off",
    }  # fmt: skip
    custom = evictor.Settings.from_env(env, "25%")
    assert custom.policy(4000).threshold == 10**9
    assert custom.policy(4000).cache_threshold == 400
    assert [p.pattern for p in custom.keep] == ["gitlab-runner-helper", "^localhost/keep"]
    assert not custom.enabled


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(UsageError, match=r"^PIPGLR_STORAGE_THRESHOLD='lots' is not a size"):
        evictor.Settings.from_env({"PIPGLR_STORAGE_THRESHOLD": "lots"}, "25%")
    with pytest.raises(UsageError, match=r"^PIPGLR_EVICTOR='maybe' is not a boolean"):
        evictor.Settings.from_env({"PIPGLR_EVICTOR": "maybe"}, "25%")


def test_api_times() -> None:
    assert epoch(12) == 12.0
    assert epoch("1970-01-01T00:00:10.123456789Z") == pytest.approx(10.123456)
    assert epoch("2026-11-29T23:38:46+00:00") == 1795995526.0
    assert epoch("garbage") == 0.0 and epoch(None) == 0.0


def box(cid: str, state: str, job: str | None, age: float) -> prune.Box:
    return prune.Box(cid, state, job, NOW - age)


def test_prune_spares_every_container_of_a_job_that_may_still_run() -> None:
    boxes = [
        # job 7: the helper finished hours ago, the build container is running
        box("helper7", "exited", "7", 5 * HOUR), box("build7", "running", "7", 5 * HOUR),
        # job 8: between two stages right now: everything stopped, one just finished
        box("helper8", "exited", "8", 3 * HOUR), box("build8", "exited", "8", 60),
        # job 9: finished long ago
        box("helper9", "exited", "9", 3 * HOUR), box("build9", "created", "9", 2 * HOUR),
        # containers not of a job: old and stopped goes, recent stays
        box("old", "exited", None, 2 * HOUR), box("fresh", "exited", None, 60),
    ]  # fmt: skip
    chosen = {b.id for b in prune.prunable(boxes, NOW, HOUR)}
    assert chosen == {"helper9", "build9", "old"}


def test_prune_reads_job_labels_and_the_latest_time() -> None:
    attrs = {"Id": "x", "State": "exited", "Labels": {prune.JOB_LABEL: "42"},
             "Created": 100, "StartedAt": 150, "ExitedAt": 400}  # fmt: skip
    assert prune.box(attrs) == prune.Box("x", "exited", "42", 400.0)


def test_the_report_goes_by_the_running_evictors_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container, running = tmp_path / "storage.env", tmp_path / "running.env"
    monkeypatch.setattr(evictor, "ENV_FILE", container)
    monkeypatch.setattr(evictor, "RUNNING_FILE", running)
    monkeypatch.delenv("PIPGLR_EVICT_MIN_AGE", raising=False)
    container.write_text("PIPGLR_STORAGE_THRESHOLD=2GB\nPIPGLR_EVICT_MIN_AGE=30m\n")
    # The evictor's unit adds a minimum age of 0 (a drop-in): it publishes what it uses.
    monkeypatch.setenv("PIPGLR_EVICT_MIN_AGE", "0")
    monkeypatch.setenv("PIPGLR_UNRELATED", "x")
    own = evictor.load_settings("25%", running=False)
    assert (own.threshold.text, own.min_age) == ("2GB", 0)
    evictor.write_env(evictor.own_env(), running)  # what serve() does at its start
    assert "PIPGLR_UNRELATED" not in running.read_text()
    # The report runs in a plain `podman exec`: it sees the evictor's settings.
    monkeypatch.delenv("PIPGLR_EVICT_MIN_AGE")
    report = evictor.load_settings("25%")
    assert (report.threshold.text, report.min_age) == ("2GB", 0)
    # Without a running evictor: the container's settings.
    running.unlink()
    assert evictor.load_settings("25%").min_age == 1800


def test_the_cache_cap_takes_only_cache_directories(tmp_path: Path) -> None:
    cache = [lru.Item(lru.CACHE, f"c{n}", 100, NOW - (9 - n) * HOUR, (f"c{n}",)) for n in range(3)]
    inv = ScriptedInventory([img("a", 9), *cache])
    settings = evictor.Settings.from_env(
        {"PIPGLR_EVICT_MIN_AGE": "1h", "PIPGLR_CACHE_THRESHOLD": "150"}, "10000"
    )
    lines: list[str] = []
    evictor.evict(inv, LastUse(tmp_path / "b.json"), settings, NOW, lines.append)
    assert inv.removed == ["c0", "c1"]  # the older image stays: the total is under its cap


def test_the_report_for_people(tmp_path: Path) -> None:
    inv = ScriptedInventory([img("old", 9, 2**20), img("held", 8, in_use=True), img("new", 0.1)])
    data = storagereport.report(inv, LastUse(tmp_path / "b.json"), SETTINGS, NOW)
    assert [(i["names"][0], i["protected"], i["evict_next"]) for i in data["items"]] == [
        ("localhost/old:1", None, True), ("localhost/held:1", "in use", False),
        ("localhost/new:1", "used recently", False),
    ]  # fmt: skip
    text = storagereport.render(data, NOW)
    lines = text.splitlines()
    assert lines[0] == "nested storage: 1.0 MiB of cap 300 B (300)"
    assert "evictable #1, next to go" in lines[5] and "1.0 MiB" in lines[5]
    assert lines[6].endswith("in use") and "8.0 h ago" in lines[6]


def test_a_cap_nothing_can_meet_is_said_once(tmp_path: Path) -> None:
    inv = ScriptedInventory([img("held", 9, 500, in_use=True), img("new", 0.1, 500)])
    lines: list[str] = []
    log = evictor._once(lines.append)
    for _ in range(3):
        evictor.evict(inv, LastUse(tmp_path / "b.json"), SETTINGS, NOW, log)
    assert inv.removed == []
    assert lines == [
        "nested storage over the cap of 300 bytes, but nothing can be evicted now "
        "(in use, on the keep-list or used within the minimum age)"
    ]


class FlakyImages:
    """An image list that fails as podman does when an image goes while it is made."""

    def __init__(self, failures: int, message: str) -> None:
        self.failures, self.message, self.calls = failures, message, 0

    def list(self, all: bool = False) -> list[str]:
        self.calls += 1
        if self.calls <= self.failures:
            raise APIError(self.message)
        return ["img"]


def _flaky(failures: int, message: str) -> Any:
    client = type("Client", (), {})()
    client.images = FlakyImages(failures, message)
    return client


GONE = "Image 0108e3 exists in local storage but may be corrupted: image not known"


def test_an_image_list_is_asked_again_when_an_image_went_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inventory, "LIST_PAUSE", 0)
    client = _flaky(2, GONE)
    assert inventory.list_images(client) == ["img"] and client.images.calls == 3
    with pytest.raises(APIError):
        inventory.list_images(_flaky(inventory.LIST_ATTEMPTS, GONE))
    other = _flaky(1, "no such storage")
    with pytest.raises(APIError):
        inventory.list_images(other)
    assert other.images.calls == 1, "other errors are not retried"


# -- the counters for the metrics exporter (pipglr.guest.statsbook) ----------------------
class FailingInventory(ScriptedInventory):
    """Removing ``fails`` is refused by podman (the item stays)."""

    def __init__(self, items: list[lru.Item], fails: str) -> None:
        super().__init__(items)
        self.fails = fails

    def remove(self, item: lru.Item) -> str | None:
        if item.key == self.fails:
            return "image is in use by a container"
        return super().remove(item)


class BrokenInventory(ScriptedInventory):
    def usage(self) -> Usage:
        raise APIError("connection refused\nmore detail")


def vol(key: str, age_h: float, size: int) -> lru.Item:
    return lru.Item(lru.VOLUME, key, size, NOW - age_h * HOUR, (key,))


def test_evictor_counts_removals_by_kind_and_bytes(tmp_path: Path) -> None:
    """Each removal counts under its kind with its size; the round is counted and its
    time is the last run; the counters continue from the file (a restarted service)."""
    stats_path = tmp_path / "evictor.json"
    inv = ScriptedInventory([img("a", 5, 150), img("b", 9, 120), vol("runner-v", 8, 90)])
    stats = statsbook.load(stats_path, evictor.EMPTY_STATS)
    evictor.check_once(inv, LastUse(tmp_path / "book.json"), SETTINGS, stats, stats_path,
                       lambda line: None)  # fmt: skip
    assert inv.removed == ["b"]  # 360 -> 240: under the cap of 300
    saved = json.loads(stats_path.read_text())
    assert saved["rounds"] == 1 and saved["failures"] == 0 and saved["last_error"] is None
    assert saved["evicted"]["image"] == {"count": 1, "bytes": 120}
    assert saved["evicted"]["volume"] == {"count": 0, "bytes": 0}
    assert saved["last_run"] is not None and saved["last_failure"] is None
    again = statsbook.load(stats_path, evictor.EMPTY_STATS)
    evictor.record_round(again, NOW + 5, [evictor.Evicted(vol("runner-w", 1, 40), None)])
    assert again["rounds"] == 2 and again["last_run"] == NOW + 5
    assert again["evicted"]["volume"] == {"count": 1, "bytes": 40}
    assert again["evicted"]["image"] == {"count": 1, "bytes": 120}


def test_evictor_counts_an_item_it_could_not_remove_as_a_failure(tmp_path: Path) -> None:
    stats_path = tmp_path / "evictor.json"
    inv = FailingInventory([img("a", 5), img("b", 9), img("c", 7), img("d", 3)], fails="b")
    stats = statsbook.load(stats_path, evictor.EMPTY_STATS)
    evictor.check_once(inv, LastUse(tmp_path / "book.json"), SETTINGS, stats, stats_path,
                       lambda line: None)  # fmt: skip
    assert inv.removed == ["c"], "b refused, c went instead"
    saved = json.loads(stats_path.read_text())
    assert saved["failures"] == 1 and saved["last_failure"] is not None
    assert saved["last_error"] == "image localhost/b:1: image is in use by a container"
    assert saved["evicted"]["image"] == {"count": 1, "bytes": 100}
    assert saved["last_run"] is not None, "the round itself measured"


def test_evictor_counts_a_round_that_raised(tmp_path: Path) -> None:
    """A round that fails (the API is down) is a failure with its first line, not a
    run; the service goes on (no exception)."""
    stats_path = tmp_path / "evictor.json"
    lines: list[str] = []
    stats = statsbook.load(stats_path, evictor.EMPTY_STATS)
    evictor.check_once(BrokenInventory([]), LastUse(tmp_path / "book.json"), SETTINGS, stats,
                       stats_path, lines.append)  # fmt: skip
    saved = json.loads(stats_path.read_text())
    assert saved["rounds"] == 1 and saved["failures"] == 1
    assert saved["last_run"] is None and saved["last_failure"] is not None
    assert saved["last_error"] == "connection refused"
    assert lines == ["check failed: connection refused"]


class FakeThing:
    def __init__(self, name: str, attrs: dict[str, Any]) -> None:
        self.name, self.attrs = name, attrs


class FakePruner:
    """``images`` or ``networks`` of podman-py: ``prune`` answers ``result``, or raises
    it when it is an exception."""

    def __init__(self, result: dict[str, Any] | Exception) -> None:
        self.result = result

    def prune(self, filters: Any = None) -> dict[str, Any]:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class FakePruneClient:
    """The parts of podman-py the prune uses: two stopped containers (one refuses
    removal), images and networks pruned, two old volumes (one refuses)."""

    def __init__(self) -> None:
        old = "1970-01-01T00:00:00Z"
        self.containers = self.volumes = self
        self.images = FakePruner({"ImagesDeleted": [{"Deleted": "a"}, {"Deleted": "b"}],
                                  "SpaceReclaimed": 4096})  # fmt: skip
        self.networks = FakePruner({"NetworksDeleted": ["n1"]})
        self.boxes = [FakeThing("", {"Id": cid, "State": "exited", "Created": 0})
                      for cid in ("c1", "c2")]  # fmt: skip
        self.vols = [FakeThing(name, {"CreatedAt": old}) for name in ("v1", "v2", "runner-x")]

    def list(self, all: bool = False, filters: Any = None) -> list[FakeThing]:
        return self.vols if filters else self.boxes

    def remove(self, name: str) -> None:
        if name in ("c2", "v2"):
            raise APIError(f"{name} is busy")


def test_prune_counts_what_it_removed_and_what_it_could_not(tmp_path: Path) -> None:
    """Per kind, bytes = the images' SpaceReclaimed, each refused item a failure; two
    runs add up (the counters continue from the file)."""
    stats_path = tmp_path / "prune.json"
    client = cast(Any, FakePruneClient())
    line = prune.counted(client, NOW, HOUR, stats_path)
    assert line.startswith("pruned 1 stopped container(s)") and line.endswith("v2 is busy")
    saved = json.loads(stats_path.read_text())
    assert saved["removed"] == {"containers": 1, "images": 2, "networks": 1, "volumes": 1}
    assert saved["bytes"] == 4096 and saved["runs"] == 1
    assert saved["failures"] == 2 and saved["last_failure"] == NOW and saved["last_run"] == NOW
    prune.counted(client, NOW + 60, HOUR, stats_path)
    saved = json.loads(stats_path.read_text())
    assert saved["runs"] == 2 and saved["removed"]["images"] == 4 and saved["bytes"] == 8192
    assert saved["failures"] == 4 and saved["last_run"] == NOW + 60
    assert stat.S_IMODE(stats_path.stat().st_mode) == 0o644


def test_prune_that_fails_is_counted_and_raises(tmp_path: Path) -> None:
    stats_path = tmp_path / "prune.json"
    client = cast(Any, FakePruneClient())
    client.images = FakePruner(APIError("storage is locked"))
    with pytest.raises(APIError):
        prune.counted(client, NOW, HOUR, stats_path)
    saved = json.loads(stats_path.read_text())
    assert saved["runs"] == 1 and saved["failures"] == 1 and saved["last_failure"] == NOW
    assert saved["last_run"] is None and saved["removed"]["containers"] == 0


class FakeImages:
    def __init__(self, images: list[dict[str, Any]]) -> None:
        self.images = images

    def list(self, all: bool = False) -> list[Any]:
        return [FakeThing(str(a.get("Id")), a) for a in self.images]


class FakeInventoryClient:
    """Images from their list attributes; no volumes, an empty ``system df``."""

    def __init__(self, images: list[dict[str, Any]]) -> None:
        self.images = FakeImages(images)
        self.volumes = FakeImages([])

    def df(self) -> dict[str, Any]:
        return {}


def test_the_inventory_marks_maintained_images_and_the_report_names_them(
    tmp_path: Path,
) -> None:
    """An image with the maintained label still tagged localhost/NAME is protected as
    "maintained" (what ``pipglr storage`` shows); the label on an untagged previous
    build, a different tag or another name's tag is not enough."""
    label = {layout.MAINTAINED_LABEL: "tools"}
    listed = [
        {"Id": "cur", "RepoTags": ["localhost/tools:latest"], "Labels": label, "Created": 1},
        {"Id": "old", "RepoTags": None, "Labels": label, "Created": 1},
        {"Id": "other", "RepoTags": ["localhost/other:latest"], "Labels": label, "Created": 1},
        {"Id": "plain", "RepoTags": ["localhost/tools:v2"], "Labels": {}, "Created": 1},
    ]
    inv = Inventory(client=cast(Any, FakeInventoryClient(listed)), cache_root=tmp_path / "c")
    items = inv.items(LastUse(tmp_path / "book.json"), [])
    assert {i.key: i.maintained for i in items} == {
        "cur": True, "old": False, "other": False, "plain": False,
    }  # fmt: skip
    ranked = {r.item.key: r.protected for r in lru.rank(items, NOW, SETTINGS.policy(10_000))}
    assert ranked == {"cur": "maintained", "old": None, "other": None, "plain": None}
