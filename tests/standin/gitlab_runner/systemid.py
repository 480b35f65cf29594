"""``.runner_system_id`` next to config.toml (commands/internal/configfile/configfile.go
``Load``, commands/internal/configfile/system_id_state.go)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from pathlib import Path

from . import log

FILE_NAME = ".runner_system_id"
_VALID = re.compile(r"^[sr]_[0-9a-zA-Z]{12}$")
_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


def generate() -> str:
    """``GenerateUniqueSystemID``: ``s_`` + 12 hex of HMAC-SHA256(machine-id,
    "gitlab-runner"); 12 random alphanumerics when there is no machine id."""
    for candidate in _MACHINE_ID_FILES:
        try:
            machine_id = Path(candidate).read_text().strip()
        except OSError:
            continue
        if machine_id:
            digest = hmac.new(machine_id.encode(), b"gitlab-runner", hashlib.sha256).hexdigest()
            return "s_" + digest[:12]
    alphabet = string.ascii_letters + string.digits
    return "s_" + "".join(secrets.choice(alphabet) for _ in range(12))


def load_or_create(config_path: Path) -> str:
    """``newSystemIDState``: read a well-formed id, else create and save one (0600); a
    failed save only warns."""
    path = config_path.parent / FILE_NAME
    try:
        found = path.read_text().strip()
    except FileNotFoundError:
        found = ""
    if _VALID.match(found):
        return found
    system_id = generate()
    log.info("Created missing unique system ID", system_id=system_id)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_text(system_id)
        path.chmod(0o600)
    except OSError as exc:
        log.warning(
            "Couldn't save new system ID on state file. In order to reliably identify this "
            "runner in jobs with a known identifier,\nplease ensure there is a text file at the "
            "location specified in `state_file` with the contents of `system_id`. Example: "
            f'echo "{system_id}" > "{path}"',
            error=exc,
        )
    return system_id
