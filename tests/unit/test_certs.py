"""pipglr.ops.certs: what `pipglr ca add` accepts and refuses, on throw-away certificates."""

from __future__ import annotations

import datetime as dt

import pytest

from pipglr.errors import UsageError
from pipglr.ops import certs
from tests.unit.certmaker import NOW, fingerprint, make_cert


def test_a_valid_ca_is_described() -> None:
    pem = make_cert()
    [info] = certs.describe(pem, "corp.pem", now=NOW)
    assert info.subject == "CN=Example Corp Root CA"
    assert info.is_ca
    assert info.sha256 == fingerprint(pem) and len(info.sha256.split(":")) == 32
    assert info.not_after == NOW + dt.timedelta(days=3650)
    assert info.days_left(NOW) == pytest.approx(3650)


def test_a_bundle_gives_every_certificate_and_a_leaf_is_no_ca() -> None:
    bundle = make_cert("Root") + "some text between\n" + make_cert("Leaf", ca=False)
    found = certs.describe(bundle, now=NOW)
    assert [(c.subject, c.is_ca) for c in found] == [("CN=Root", True), ("CN=Leaf", False)]


def test_an_expired_certificate_is_refused_in_one_line() -> None:
    expired = make_cert(not_after=NOW - dt.timedelta(days=2))
    with pytest.raises(UsageError) as caught:
        certs.describe(expired, "old.pem", now=NOW)
    message = str(caught.value)
    assert message == (
        f"old.pem: CN=Example Corp Root CA expired on {NOW - dt.timedelta(days=2):%Y-%m-%d}: "
        "ask for the current CA certificate"
    )
    # Positive control: the same certificate the day before it expired passes, and
    # parse() (used by `ca list`) shows it without judging.
    assert certs.describe(expired, now=NOW - dt.timedelta(days=3))
    assert certs.parse(expired)[0].not_after < NOW


def test_one_expired_certificate_in_a_bundle_refuses_the_file() -> None:
    bundle = make_cert("Good") + make_cert("Old", not_after=NOW - dt.timedelta(days=1))
    with pytest.raises(UsageError, match="CN=Old expired on"):
        certs.describe(bundle, now=NOW)


def test_a_certificate_not_yet_valid_is_refused() -> None:
    future = make_cert(not_before=NOW + dt.timedelta(days=1))
    with pytest.raises(UsageError, match=r"^f.pem: CN=.* is not valid before .*clock"):
        certs.describe(future, "f.pem", now=NOW)
    assert certs.describe(future, now=NOW + dt.timedelta(days=2))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello, I am not a certificate\n", "no PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n", "no PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "block 1"),
        ("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n", "not valid base64"),
    ],
    ids=["prose", "not-base64-chars", "not-der", "bad-padding"],
)
def test_garbage_is_not_a_pem_certificate(text: str, reason: str) -> None:
    with pytest.raises(UsageError) as caught:
        certs.describe(text, "junk.pem", now=NOW)
    message = str(caught.value)
    assert message.startswith("junk.pem: not a PEM certificate (") and reason in message
    assert "\n" not in message
