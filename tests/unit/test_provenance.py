"""Build provenance: labels round-trip, and the publish decision for each cause."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from pipglr.build import provenance
from pipglr.build.provenance import Provenance, decide

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = Provenance(
    base_digest="sha256:" + "b" * 64,
    runner_version="v18.11.4",
    runner_sha256="c" * 64,
    packages_digest="sha256:" + "d" * 64,
    commit="e" * 40,
)
CHANGES = {
    "base_digest": "sha256:" + "1" * 64,
    "runner_version": "v18.12.0",
    "runner_sha256": "2" * 64,
    "packages_digest": "sha256:" + "3" * 64,
    "commit": "4" * 40,
}


def test_labels_round_trip() -> None:
    """Every fact has its own label and reads back unchanged."""
    labels = PUBLISHED.to_labels()
    assert len(labels) == len(provenance.LABELS) == len(set(provenance.LABELS.values()))
    assert Provenance.from_labels(labels) == PUBLISHED


def test_image_without_provenance_labels_reads_as_none() -> None:
    """An image built before provenance labels (or none at all) has no facts."""
    assert Provenance.from_labels({"org.opencontainers.image.title": "pipglr"}) is None
    assert Provenance.from_labels(None) is None


def test_nothing_changed_means_no_rebuild() -> None:
    """Equal facts: not needed, and every fact is reported unchanged."""
    decision = decide(PUBLISHED, dataclasses.replace(PUBLISHED))
    assert decision.needed is False
    assert len(decision.reasons) == 5 and all("unchanged" in r for r in decision.reasons)


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_each_cause_alone_makes_a_rebuild_needed(field: str) -> None:
    """One changed fact is enough, and the first reason names it with both values."""
    current = dataclasses.replace(PUBLISHED, **{field: CHANGES[field]})
    decision = decide(PUBLISHED, current)
    assert decision.needed is True
    first = decision.reasons[0]
    assert provenance.TITLES[field] in first and CHANGES[field] in first, decision.reasons
    assert sum("changed" in r and "unchanged" not in r for r in decision.reasons) == 1


def test_no_published_image_means_publish() -> None:
    """Nothing published yet (or no provenance labels on it): publish."""
    decision = decide(None, PUBLISHED)
    assert decision.needed is True and "no published image" in decision.reasons[0]


def test_fact_missing_from_the_published_image_is_a_cause() -> None:
    """A fact the published image does not record cannot be shown unchanged."""
    older = dataclasses.replace(PUBLISHED, packages_digest=None)
    decision = decide(older, PUBLISHED)
    assert decision.needed is True and "not recorded" in decision.reasons[0]


def test_fact_unknown_now_is_not_compared() -> None:
    """Before a build the package list is unknown: reported, not a cause."""
    decision = decide(PUBLISHED, dataclasses.replace(PUBLISHED, packages_digest=None))
    assert decision.needed is False
    assert any("not known now" in r for r in decision.reasons), decision.reasons


def test_package_list_digest_ignores_order_and_blank_lines() -> None:
    """The digest is of the sorted package=version lines."""
    one = provenance.package_list_digest("b=2\na=1\n")
    assert one == provenance.package_list_digest("\na=1\nb=2")
    assert one != provenance.package_list_digest("a=1\nb=3\n")
    assert one.startswith("sha256:") and len(one) == 71


def test_git_commit_marks_a_dirty_checkout(tmp_path: Path) -> None:
    """HEAD's hash, with -dirty once a tracked file changed; None outside git."""
    assert provenance.git_commit(tmp_path) is None

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    clean = provenance.git_commit(tmp_path)
    assert clean and len(clean) == 40
    (tmp_path / "f").write_text("2")
    assert provenance.git_commit(tmp_path) == f"{clean}-dirty"


def test_build_writes_the_package_list_where_provenance_reads_it() -> None:
    """The Containerfile passes PACKAGE_LIST_PATH to install-packages.sh, which writes
    dpkg-query output there in the package layer."""
    containerfile = (REPO / "Containerfile").read_text()
    assert f"\\\n    {provenance.PACKAGE_LIST_PATH}\n" in containerfile
    script = (REPO / "scripts/install-packages.sh").read_text()
    assert "dpkg-query -W" in script and '> "$2"' in script
