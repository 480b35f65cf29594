"""What a private CA file holds: subject, validity, fingerprint (host side only).

``pipglr ca add`` checks every certificate of the file before anything is stored, and
``pipglr ca list`` and ``pipglr doctor`` show them. X.509 is parsed with the
``cryptography`` library (subject, dates and fingerprint as values, not scraped from
``openssl x509`` output); the image never imports this module. Block splitting is
:func:`pipglr.netsettings.split_pem`, shared with the image.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from pipglr import netsettings
from pipglr.errors import UsageError


@dataclass(frozen=True)
class CertInfo:
    """One certificate as ``pipglr ca list`` shows it."""

    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    is_ca: bool

    def days_left(self, now: dt.datetime) -> float:
        """Days until it expires (negative: expired)."""
        return (self.not_after - now).total_seconds() / 86400


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _info(cert: x509.Certificate) -> CertInfo:
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return CertInfo(
        subject=cert.subject.rfc4514_string() or "(empty subject)",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        is_ca=_is_ca(cert),
    )


def parse(pem_text: str, source: str = "the file") -> list[CertInfo]:
    """Every certificate of ``pem_text``, without judging validity; UsageError when a
    block is not a certificate (``source`` names the file in the message)."""
    try:
        blocks = netsettings.split_pem(pem_text)
    except UsageError as exc:
        raise UsageError(f"{source}: not a PEM certificate ({exc})") from None
    found: list[CertInfo] = []
    for number, block in enumerate(blocks, 1):
        try:
            cert = x509.load_pem_x509_certificate(block.encode())
        except ValueError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(
                f"{source}: not a PEM certificate (block {number}: {reason})"
            ) from None
        found.append(_info(cert))
    return found


def describe(
    pem_text: str, source: str = "the file", now: dt.datetime | None = None
) -> list[CertInfo]:
    """The certificates of ``pem_text``, refusing any that is expired or not yet valid
    at ``now`` (default: the current time) with a one-line UsageError."""
    moment = now or _now()
    found = parse(pem_text, source)
    for cert in found:
        if cert.not_after < moment:
            raise UsageError(
                f"{source}: {cert.subject} expired on {cert.not_after:%Y-%m-%d}: "
                "ask for the current CA certificate"
            )
        if cert.not_before > moment:
            raise UsageError(
                f"{source}: {cert.subject} is not valid before {cert.not_before:%Y-%m-%d %H:%M} "
                "UTC: check this host's clock, or wait until then"
            )
    return found
