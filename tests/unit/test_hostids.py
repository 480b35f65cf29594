"""pipglr.guest.hostids: the image's own refusal of the host's ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipglr import layout, subids
from pipglr.errors import ConfigError
from pipglr.guest import hostids

ROOTFUL = "         0          0 4294967295\n"
ROOTLESS = "         0       1000          1\n         1     100000      65536\n"
#: root with --uidmap/--userns: ids of its own, even where some map to themselves.
ROOT_USERNS = "         0     200000      65536\n"
#: root with `--uidmap 0:0:65539`: a user namespace, but every job id is the host's.
PARTIAL_IDENTITY = "         0          0      65539\n"
#: Only root maps onto itself (`--uidmap 0:0:1 --uidmap 1:200000:65538`): no job runs
#: as root of the outer container, so no job id is the host's.
ROOT_ONLY_IDENTITY = "         0          0          1\n         1     200000      65538\n"
ALLOW = layout.HOST_IDS_CONSENT.encode()


def environ(*items: bytes) -> bytes:
    return b"\0".join([b"container=podman", *items]) + b"\0"


def test_root_without_a_user_namespace_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as refused:
        hostids.check(ROOTFUL, ROOTFUL, environ())
    text = str(refused.value)
    assert text == hostids.REFUSAL, "what the engine test looks for in the log"
    assert "\n" not in text and "host's system ids" in text and "uid map 0 0 4294967295" in text
    assert "1-999, 1001-65538" in text, "the job uids named"
    assert "unprivileged user" in text and layout.HOST_IDS_CONSENT in text


@pytest.mark.parametrize(
    ("uid_map", "gid_map", "kind"),
    [
        (PARTIAL_IDENTITY, PARTIAL_IDENTITY, "uid map 0 0 65539"),
        (ROOT_USERNS, PARTIAL_IDENTITY, "gid map 0 0 65539"),
        (ROOT_USERNS, ROOTFUL, "gid map 0 0 4294967295"),
        (ROOT_USERNS, "0 200000 1000\n1001 1001 1\n1002 201002 64537\n", "gids 1001 would"),
    ],
    ids=["partial-identity", "identity-gid-map", "whole-identity-gid-map", "one-gid"],
)
def test_any_job_id_mapped_onto_itself_is_refused(uid_map: str, gid_map: str, kind: str) -> None:
    """Not only the whole identity: a partial identity uid map (`--uidmap 0:0:65539`),
    an identity gid map next to a uid map of its own, even one job gid (the podman
    user's, a job's root group) on the host's same id: refused, naming the map."""
    with pytest.raises(ConfigError) as refused:
        hostids.check(uid_map, gid_map, environ())
    text = str(refused.value)
    assert kind in text and "\n" not in text and layout.HOST_IDS_CONSENT in text, text


def test_the_same_maps_pass_with_consent() -> None:
    said = hostids.check(ROOT_USERNS, PARTIAL_IDENTITY, environ(ALLOW))
    assert "gids 1-999, 1001-65538 are the host's own" in said
    assert "accepted by PIPGLR_ALLOW_HOST_IDS" in said


@pytest.mark.parametrize("value", [b"", b"false", b"0", b"no"])
def test_anything_but_a_yes_is_no_consent(value: bytes) -> None:
    with pytest.raises(ConfigError):
        hostids.check(ROOTFUL, ROOTFUL, environ(f"{layout.ALLOW_HOST_IDS_ENV}=".encode() + value))


def test_consent_lets_root_run_and_says_so() -> None:
    said = hostids.check(ROOTFUL, ROOTFUL, environ(ALLOW))
    assert "accepted by PIPGLR_ALLOW_HOST_IDS" in said


@pytest.mark.parametrize("id_map", [ROOTLESS, ROOT_USERNS, ROOT_ONLY_IDENTITY])
def test_a_user_namespace_of_its_own_needs_no_consent(id_map: str) -> None:
    """Positive control of the refusals above: maps that give jobs other ids pass,
    including one whose identity extent holds only root (no job's id)."""
    assert "user namespace of its own" in hostids.check(id_map, id_map, environ())
    assert not hostids.host_ids(id_map)


def test_job_ids_are_the_podman_user_and_its_sub_ids() -> None:
    """Podman's own id (a job's root) and the /etc/subuid ranges: what the image bakes."""
    ranges = hostids.job_ids(subids.image_subid_file())
    assert ranges == hostids.IMAGE_JOB_IDS
    assert subids.IdRange(layout.PODMAN.uid, 1) in ranges
    assert sum(r.count for r in ranges) == layout.NESTED_IDS + 1
    assert hostids.shared_ids("1001 1001 1\n") == [subids.IdRange(1001, 1)]
    assert hostids.shared_ids("1000 1000 1\n") == [], "the runner's id is no job's"


def test_guard_reads_both_maps_and_the_sub_id_files(tmp_path: Path) -> None:
    """The guard checks the gid map too, with the job ids of /etc/subgid."""
    proc, etc = tmp_path / "proc", tmp_path / "etc"
    (proc / "self").mkdir(parents=True)
    (proc / "1").mkdir()
    etc.mkdir()
    (proc / "self/uid_map").write_text(ROOT_USERNS)
    (proc / "self/gid_map").write_text("0 200000 5000\n5000 5000 10\n")
    (proc / "1/environ").write_bytes(environ())
    (etc / "subuid").write_text(subids.image_subid_file())
    (etc / "subgid").write_text("podman:2:10\n")
    assert "of its own" in hostids.guard(proc, etc), "gid 5000 is no job's here"
    (etc / "subgid").write_text("podman:5005:10\n")
    with pytest.raises(ConfigError, match="gids 5005-5009 would"):
        hostids.guard(proc, etc)
