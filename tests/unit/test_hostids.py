"""pipglr.guest.hostids: the image's own refusal of the host's ids."""

from __future__ import annotations

import pytest

from pipglr import layout
from pipglr.errors import ConfigError
from pipglr.guest import hostids

ROOTFUL = "         0          0 4294967295\n"
ROOTLESS = "         0       1000          1\n         1     100000      65536\n"
#: root with --uidmap/--userns: ids of its own, even where some map to themselves.
ROOT_USERNS = "         0     200000      65536\n"
ALLOW = layout.HOST_IDS_CONSENT.encode()


def environ(*items: bytes) -> bytes:
    return b"\0".join([b"container=podman", *items]) + b"\0"


def test_root_without_a_user_namespace_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as refused:
        hostids.check(ROOTFUL, environ())
    text = str(refused.value)
    assert "\n" not in text and "host's system ids" in text
    assert "unprivileged user" in text and layout.HOST_IDS_CONSENT in text


@pytest.mark.parametrize("value", [b"", b"false", b"0", b"no"])
def test_anything_but_a_yes_is_no_consent(value: bytes) -> None:
    with pytest.raises(ConfigError):
        hostids.check(ROOTFUL, environ(f"{layout.ALLOW_HOST_IDS_ENV}=".encode() + value))


def test_consent_lets_root_run_and_says_so() -> None:
    said = hostids.check(ROOTFUL, environ(ALLOW))
    assert "accepted by PIPGLR_ALLOW_HOST_IDS" in said


@pytest.mark.parametrize("uid_map", [ROOTLESS, ROOT_USERNS])
def test_a_user_namespace_of_its_own_needs_no_consent(uid_map: str) -> None:
    assert "user namespace of its own" in hostids.check(uid_map, environ())
    assert not hostids.host_ids(uid_map)
