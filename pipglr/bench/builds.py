"""Image builds in jobs: unprivileged and privileged nested jobs against the host.

The job image is ``examples/podman-job`` (podman and buildah; native overlay on its
own volumes, chroot isolation, the job's network and UTS namespace): the *same* image
builds in an unprivileged job (no options at all) in the least-privilege outer
(``labels.NESTING_OPTIONS``) and in a ``--privileged`` job in an outer started with
``labels.PRIVILEGED_NESTING_OPTIONS`` (the only outer where a privileged nested job
starts), so the two rows differ in privilege alone. The host side is the same
``podman build`` of the same context on the host's podman, and on the same-version
host (:mod:`pipglr.bench.samehost`), each with its default isolation.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import time
from pathlib import Path

from pipglr.bench.container import BenchContainer
from pipglr.bench.report import Measurement, collect, sample
from pipglr.bench.samehost import SameVersionHost
from pipglr.errors import EngineError

#: The job image that builds images (examples/podman-job).
JOB_IMAGE = "localhost/pipglr-podman-job"
JOB_IMAGE_DIR = Path(__file__).resolve().parents[2] / "examples" / "podman-job"

#: A small multi-step build; ``base`` is a minimal image made from the job's own
#: shell and coreutils (no registry needed).
CONTAINERFILE = """FROM localhost/bench-base
RUN mkdir -p /app && echo one > /app/a
COPY data.txt /app/data.txt
RUN cat /app/a /app/data.txt > /app/b
RUN sh -c 'i=0; while [ $i -lt 200 ]; do echo $i >> /app/c; i=$((i+1)); done'
"""
MAKE_BASE = r"""set -e
rm -rf /tmp/bb && mkdir -p /tmp/bb
for f in /bin/sh /usr/bin/cat /usr/bin/mkdir /usr/bin/echo \
         $(ldd /bin/sh /usr/bin/cat /usr/bin/mkdir | grep -o '/[^ :]*'); do
    cp --parents -L "$f" /tmp/bb/
done
"""
#: What a build ran on, printed as one ``info:`` line before the timings.
INFO = (
    "echo \"info: storage $(podman info --format '{{.Store.GraphDriverName}}' 2>/dev/null),"
    ' isolation ${BUILDAH_ISOLATION:-oci}"\n'
)


def build_script(repeat: int) -> str:
    """Make the base and context, then ``repeat`` timed no-cache builds (ns per line)."""
    containerfile = CONTAINERFILE.replace("'", "'\\''")
    return (
        MAKE_BASE
        + "tar -C /tmp/bb -c . | podman import - localhost/bench-base >/dev/null\n"
        + "mkdir -p /tmp/bctx && echo data > /tmp/bctx/data.txt\n"
        + f"printf '%s' '{containerfile}' > /tmp/bctx/Containerfile\nset +e\n"
        + INFO
        + f"for i in $(seq {repeat}); do s=$(date +%s%N); "
        + "podman build -q --no-cache -t b$i /tmp/bctx >/dev/null 2>/tmp/build.err "
        + '|| echo "FAIL $(tail -n1 /tmp/build.err)"; '
        + "e=$(date +%s%N); echo $((e - s)); done\n"
    )


def job_image_build_command(base_image: str) -> list[str]:
    """The podman command that builds the job image from ``base_image``."""
    return ["podman", "build", "--build-arg", f"BASE_IMAGE={base_image}",
            "-t", JOB_IMAGE, str(JOB_IMAGE_DIR)]  # fmt: skip


def ensure_job_image(base_image: str) -> str:
    """Build the job image with root's podman unless it exists; return its tag."""
    have = subprocess.run(["podman", "image", "exists", JOB_IMAGE], check=False)
    if have.returncode != 0:
        command = job_image_build_command(base_image)
        print(f"+ {' '.join(command)}", flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            raise EngineError(f"building the bench job image {JOB_IMAGE} failed: see above")
    return JOB_IMAGE


class BuildBench:
    """The image-build rows of one outer mode."""

    def __init__(self, box: BenchContainer, repeat: int, same: SameVersionHost | None,
                 job_image: str = JOB_IMAGE) -> None:  # fmt: skip
        self.box = box
        self.repeat = repeat
        self.same = same
        self.job_image = job_image
        self.mode = box.outer.mode

    def nested(self, privileged: bool) -> Measurement:
        """The builds in a nested job of the job image, in an outer started with the
        options that job needs; the outer is left running with them."""
        kind = "privileged job" if privileged else "unprivileged job, no options"
        m = Measurement(f"image build ({kind})", self.mode, "s")
        if self.box.privileged != privileged:
            self.box.start(privileged)
        options = ("--privileged",) if privileged else ()
        result = self.box.nested_job(build_script(self.repeat), *options, image=self.job_image)
        self._read(m, result)
        return m

    def same_host(self) -> Measurement:
        """The builds by the same-version host's root podman."""
        m = Measurement("image build (same-version host podman)", self.mode, "s")
        if self.same is not None:
            self._read(m, self.same.sh(build_script(self.repeat)))
        return m

    def host(self) -> Measurement:
        """The same build by the host's podman (timed around the CLI)."""
        m = Measurement("image build (host podman)", self.mode, "s")
        outer = self.box.outer
        with tempfile.TemporaryDirectory(prefix="pipglr-bench-", dir="/var/tmp") as tmp:
            ctx = Path(tmp)
            ctx.chmod(0o777)
            (ctx / "Containerfile").write_text(CONTAINERFILE)
            (ctx / "data.txt").write_text("data\n")
            self._host_base()
            for _ in range(self.repeat):
                s = time.monotonic()
                result = outer.run("build", "-q", "--no-cache", "-t", "pipglr-bench-b", str(ctx),
                                   check=False)  # fmt: skip
                sample(m, result.returncode == 0, time.monotonic() - s, result.stderr[-120:])
        outer.run("rmi", "--force", "pipglr-bench-b", "localhost/bench-base", check=False)
        return m

    def _host_base(self) -> None:
        """Import the same minimal base into the host engine (made inside a container)."""
        result = self.box.host_job(MAKE_BASE + "tar -C /tmp/bb -c . | base64 -w0\n")
        if result.returncode != 0:
            raise EngineError(f"making the bench base image failed: {result.stderr.strip()}")
        with tempfile.NamedTemporaryFile(suffix=".tar", dir="/var/tmp") as handle:
            handle.write(base64.b64decode(result.stdout))
            handle.flush()
            os.chmod(handle.name, 0o644)
            self.box.outer.run("import", handle.name, "localhost/bench-base")

    @staticmethod
    def _read(m: Measurement, result: subprocess.CompletedProcess[str]) -> None:
        """Timings, and the ``info:`` line as the measurement's note."""
        collect(m, result)
        for line in result.stdout.splitlines():
            if line.startswith("info: ") and not m.note:
                m.note = line.removeprefix("info: ")
