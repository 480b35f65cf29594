"""Bootstrap the Debian base image locally, for hosts that reach no registry.

``mmdebstrap`` (or ``debootstrap``) builds a minimal Debian root filesystem from a
package mirror, which ``podman import`` turns into an image. Progress streams to the
terminal. Works as root and, with a subuid range, as an ordinary user
(``--mode=unshare``).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pipglr.errors import EngineError

DEFAULT_SUITE = "trixie"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_TAG = "localhost/pipglr-base:trixie"


def bootstrap_command(suite: str, mirror: str, tarball: Path) -> list[str]:
    """The command writing a minimal ``suite`` root filesystem to ``tarball``."""
    if shutil.which("mmdebstrap"):
        return [
            "mmdebstrap", "--mode=auto", "--variant=minbase", "--format=tar",
            "--aptopt=Acquire::Retries=3", suite, str(tarball), mirror,
        ]  # fmt: skip
    if shutil.which("debootstrap"):
        return ["debootstrap", "--variant=minbase", suite, str(tarball.with_suffix("")), mirror]
    raise EngineError(
        "neither mmdebstrap nor debootstrap is installed: `apt-get install mmdebstrap`, "
        "or build with a base image your registry serves (--base-image)"
    )


def bootstrap(
    tag: str = DEFAULT_TAG, suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR
) -> str:
    """Build the base rootfs and import it as ``tag``; return the tag."""
    with tempfile.TemporaryDirectory(prefix="pipglr-base-", dir="/var/tmp") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        command = bootstrap_command(suite, mirror, tarball)
        print(f"+ {shlex.join(command)}", file=sys.stderr, flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            raise EngineError(f"bootstrapping {suite} from {mirror} failed: see the output above")
        if command[0] == "debootstrap":
            rootfs = tarball.with_suffix("")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        importer = ["podman", "import", "--change", "CMD=/bin/bash", str(tarball), tag]
        print(f"+ {shlex.join(importer)}", file=sys.stderr, flush=True)
        if subprocess.run(importer, check=False).returncode != 0:
            raise EngineError(f"podman import of the {suite} rootfs failed: see the output above")
    return tag
