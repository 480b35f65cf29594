"""The eviction order for crafted histories (pipglr.guest.lru)."""

from __future__ import annotations

import re

import pytest

from pipglr.errors import UsageError
from pipglr.guest import lru
from pipglr.guest.lru import CACHE, IMAGE, VOLUME, Item, Policy

NOW = 1_000_000.0
HOUR = 3600.0


def image(key: str, used: float, size: int = 100, **kw: object) -> Item:
    names = kw.pop("names", (f"localhost/{key}:1",))
    return Item(IMAGE, key, size, NOW - used, names, **kw)  # type: ignore[arg-type]


def keys(items: list[Item]) -> list[str]:
    return [i.key for i in items]


POLICY = Policy(threshold=0, min_age=HOUR, keep=(re.compile("gitlab-runner-helper"),))


def test_least_recently_used_first_across_kinds() -> None:
    items = [
        image("new", 2 * HOUR),
        Item(VOLUME, "runner-v", 10, NOW - 5 * HOUR, ("runner-v",)),
        image("old", 9 * HOUR),
        Item(CACHE, "runner-c", 10, NOW - 3 * HOUR, ("runner-c",)),
    ]
    assert keys(lru.candidates(items, NOW, POLICY)) == ["old", "runner-v", "runner-c", "new"]


def test_ties_put_children_first_then_a_stable_order() -> None:
    items = [
        image("b", 5 * HOUR),
        image("parent", 5 * HOUR),
        image("child", 5 * HOUR, parent="parent"),
        image("a", 5 * HOUR),
    ]
    assert keys(lru.candidates(items, NOW, POLICY)) == ["child", "a", "b", "parent"]


def test_a_parent_counts_its_childs_use_and_goes_after_it() -> None:
    # The parent itself was last used long ago, but its child was used more recently:
    # the child's use is a use of the parent's layers.
    items = [
        image("parent", 10 * HOUR),
        image("child", 3 * HOUR, parent="parent"),
        image("middle", 5 * HOUR),
    ]
    assert keys(lru.candidates(items, NOW, POLICY)) == ["middle", "child", "parent"]
    by_key = {r.item.key: r for r in lru.rank(items, NOW, POLICY)}
    assert by_key["parent"].last_used == NOW - 3 * HOUR


def test_in_use_protects_the_image_and_its_ancestors() -> None:
    items = [
        image("base", 10 * HOUR),
        image("mid", 10 * HOUR, parent="base"),
        image("top", 10 * HOUR, parent="mid", in_use=True),
        image("free", 10 * HOUR),
    ]
    ranked = {r.item.key: r.protected for r in lru.rank(items, NOW, POLICY)}
    assert ranked == {
        "base": "parent of an image in use",
        "mid": "parent of an image in use",
        "top": "in use",
        "free": None,
    }
    assert keys(lru.candidates(items, NOW, POLICY)) == ["free"]


def test_keep_list_protects_matching_names_and_their_parents() -> None:
    helper = "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17"
    items = [
        image("helper", 99 * HOUR, names=(helper,), parent="alpine"),
        image("alpine", 99 * HOUR),
        image("job", 50 * HOUR),
    ]
    ranked = {r.item.key: r.protected for r in lru.rank(items, NOW, POLICY)}
    assert ranked["helper"] == "keep-list"
    assert ranked["alpine"] == "parent of a kept image"
    assert keys(lru.candidates(items, NOW, POLICY)) == ["job"]


def test_min_age_protects_recent_uses_of_every_kind() -> None:
    items = [
        image("recent", 0.5 * HOUR),
        Item(VOLUME, "runner-v", 1, NOW - 10, ("runner-v",)),
        image("old", 2 * HOUR),
    ]
    assert keys(lru.candidates(items, NOW, POLICY)) == ["old"]
    assert keys(lru.candidates(items, NOW, Policy(0, 0.0))) == ["old", "recent", "runner-v"]


def test_volumes_and_caches_in_use_stay() -> None:
    items = [
        Item(VOLUME, "runner-a", 1, NOW - 9 * HOUR, ("runner-a",), in_use=True),
        Item(CACHE, "runner-b", 1, NOW - 9 * HOUR, ("runner-b",), in_use=True),
        Item(CACHE, "runner-c", 1, NOW - 9 * HOUR, ("runner-c",)),
    ]
    assert keys(lru.candidates(items, NOW, POLICY)) == ["runner-c"]


def test_plan_stops_once_under_the_threshold() -> None:
    items = [image("a", 9 * HOUR, 40), image("b", 8 * HOUR, 40), image("c", 7 * HOUR, 40)]
    policy = Policy(threshold=50, min_age=HOUR)
    assert keys(lru.plan(items, 120, 0, NOW, policy)) == ["a", "b"]
    assert lru.plan(items, 50, 0, NOW, policy) == []


def test_plan_counts_only_what_an_image_adds_to_its_parent() -> None:
    items = [image("base", 9 * HOUR, 100), image("child", 9 * HOUR, 130, parent="base")]
    # Removing the child frees 30 of 130; the base must go too to get under 50.
    assert keys(lru.plan(items, 130, 0, NOW, Policy(50, HOUR))) == ["child", "base"]
    assert keys(lru.plan(items, 130, 0, NOW, Policy(110, HOUR))) == ["child"]


def test_plan_meets_the_cache_cap_with_cache_directories_only() -> None:
    items = [
        image("img", 9 * HOUR, 40),
        Item(CACHE, "c-old", 30, NOW - 8 * HOUR, ("c-old",)),
        Item(CACHE, "c-new", 30, NOW - 7 * HOUR, ("c-new",)),
    ]
    policy = Policy(threshold=10_000, min_age=HOUR, cache_threshold=40)
    assert keys(lru.plan(items, 100, 60, NOW, policy)) == ["c-old"]


@pytest.mark.parametrize(
    ("text", "size", "expected"),
    [
        ("20GB", 0, 20 * 10**9),
        ("20G", 0, 20 * 2**30),
        ("512MiB", 0, 512 * 2**20),
        (" 1.5 gib ", 0, int(1.5 * 2**30)),
        ("1073741824", 0, 2**30),
        ("25%", 4000, 1000),
        ("100%", 4000, 4000),
    ],
)
def test_thresholds(text: str, size: int, expected: int) -> None:
    assert lru.parse_threshold("X", text).resolve(size) == expected


@pytest.mark.parametrize("text", ["", "20 parsecs", "-5GB", "0%", "150%", "x%", "5GB\n;rm"])
def test_bad_thresholds_name_the_setting_and_the_fix(text: str) -> None:
    with pytest.raises(UsageError, match=r"^X=.*(use bytes with a unit|percentage)"):
        lru.parse_threshold("X", text)


def test_durations() -> None:
    assert [lru.parse_duration("D", t) for t in ("0", "90", "90s", "30m", "1h", "2d")] == [
        0,
        90,
        90,
        1800,
        3600,
        172800,
    ]
    with pytest.raises(UsageError, match=r"^D='1 week' is not a duration"):
        lru.parse_duration("D", "1 week")


def test_keep_list_rejects_a_bad_regex() -> None:
    assert [p.pattern for p in lru.parse_keep("K", "a.* ^b$")] == ["a.*", "^b$"]
    with pytest.raises(UsageError, match=r"^K: '\(' is not a regular expression"):
        lru.parse_keep("K", "(")


def test_the_baked_helper_archive_is_kept_from_the_moment_it_is_loaded() -> None:
    """Between the runner's load and its tag the helper image has only the archive's
    name: the default keep-list must hold it (CI lost it there once)."""
    from pipglr.build import helperarchive

    name = f"{helperarchive.CONVERT_REPO}:0123456789ab"
    keep = lru.parse_keep("default", " ".join(lru.DEFAULT_KEEP))
    assert any(p.search(name) for p in keep)
    assert not any(p.search("localhost/pipglr-helper-convert:0123456789ab") for p in keep)


def test_a_maintained_image_and_its_parent_are_never_evicted() -> None:
    """``pipglr images``' job images stay however old (and so does the base their
    layers sit on); a rebuild's previous image is no longer maintained and goes."""
    items = [
        image("debian", 99 * HOUR),
        image("tools", 99 * HOUR, names=("localhost/tools:latest",), parent="debian",
              maintained=True),
        image("tools-before", 98 * HOUR, names=(), parent="debian"),
        image("job", 50 * HOUR),
    ]  # fmt: skip
    ranked = {r.item.key: r.protected for r in lru.rank(items, NOW, POLICY)}
    assert ranked == {
        "debian": "parent of a maintained image",
        "tools": "maintained",
        "tools-before": None,
        "job": None,
    }
    assert keys(lru.candidates(items, NOW, POLICY)) == ["tools-before", "job"]
