"""Job measurements: start latency, a file-heavy job, concurrency, storage drivers.

Work inside a container is timed inside it (``date +%s%N`` around the command), so
``podman exec`` overhead is not counted. The file-heavy job runs *interleaved*: each
round runs the nested job, the host job and the same-version host's job once, in an
order that rotates from round to round, so a slow spell of the VM's disk hits every
side alike and the per-round ratios (see :mod:`pipglr.bench.report`) show the spread.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence

from pipglr import layout
from pipglr.bench.container import BENCH_NAME, BenchContainer
from pipglr.bench.report import Measurement, collect, sample, sample_ns
from pipglr.bench.samehost import SameVersionHost

#: Generates ~10k small files, archives, unpacks and checksums them; prints the
#: nanoseconds the work took, measured inside the container. ``sync`` first, untimed:
#: the previous sample's dirty pages are written back before this one starts, not
#: during it.
FILE_WORK = r"""
sync
s=$(date +%s%N)
mkdir -p /tmp/w/src && cd /tmp/w/src
i=0; while [ $i -lt 100 ]; do mkdir d$i; i=$((i+1)); done
seq 0 9999 | while read n; do echo "file $n" > d$((n % 100))/f$n; done
cd /tmp/w && tar cf src.tar src && mkdir out && tar xf src.tar -C out
find out -type f -exec sha256sum {} + | sha256sum >/dev/null
e=$(date +%s%N); echo $((e - s))
"""
Done = subprocess.CompletedProcess[str]
#: Rounds of the file-heavy job in a full run (a quick run: the bench's repeat).
FILE_ROUNDS = 11


def rotated(sides: Sequence[str], round_: int) -> list[str]:
    """``sides`` starting at ``round_`` modulo their number (the interleaving order)."""
    at = round_ % len(sides)
    return [*sides[at:], *sides[:at]]


class JobBench:
    """Job start, the file-heavy job and K concurrent jobs of one outer mode."""

    def __init__(self, box: BenchContainer, repeat: int, same: SameVersionHost | None) -> None:
        self.box = box
        self.repeat = repeat
        self.same = same
        self.mode = box.outer.mode

    def job_start(self) -> tuple[Measurement, Measurement]:
        """`run --rm IMAGE true` through the inner API vs through host podman."""
        nested = Measurement("job start (docker API, nested)", self.mode, "s")
        run = self.box.docker_cmd("run", "--rm", "--entrypoint", "true", self.box.image)
        loop = (
            f"for i in $(seq {self.repeat}); do s=$(date +%s%N); {run} || echo FAIL; "
            "e=$(date +%s%N); echo $((e - s)); done"
        )
        collect(nested, self.box.nested(loop))
        host = Measurement("job start (host podman)", self.mode, "s")
        for _ in range(self.repeat):
            s = time.monotonic()
            result = self.box.outer.run("run", "--rm", "--entrypoint", "true", self.box.image,
                                        check=False)  # fmt: skip
            sample(host, result.returncode == 0, time.monotonic() - s)
        return nested, host

    def file_work(self, rounds: int) -> dict[str, Measurement]:
        """~10k small files: archive, unpack, checksum; ``rounds`` interleaved rounds
        of the nested job, the host container and (if any) the same-version host's."""
        sides: dict[str, tuple[Measurement, Callable[[], Done]]] = {
            "nested": (Measurement("10k small files (nested job)", self.mode, "s"),
                       lambda: self.box.nested_job(FILE_WORK, timeout=900)),
            "host": (Measurement("10k small files (host container)", self.mode, "s"),
                     lambda: self.box.host_job(FILE_WORK, timeout=900)),
        }  # fmt: skip
        same = self.same
        if same is not None:
            sides["same"] = (
                Measurement("10k small files (same-version host container)", self.mode, "s"),
                lambda: same.job(FILE_WORK, timeout=900),
            )
        for n in range(rounds):
            took = []
            for side in rotated(list(sides), n):
                m, run = sides[side]
                before = len(m.samples)
                sample_ns(m, run())
                took.append(f"{side} {m.samples[-1]:.2f} s" if len(m.samples) > before
                            else f"{side} failed")  # fmt: skip
            print(f"  {self.mode:8} file-heavy round {n + 1}/{rounds}: {', '.join(took)}",
                  flush=True)  # fmt: skip
        return {side: m for side, (m, _) in sides.items()}

    def concurrency(self, levels: Sequence[int]) -> list[Measurement]:
        """K nested jobs at once: wall time and failures."""
        results = []
        run = self.box.docker_cmd("run", "--rm", "--entrypoint", "sh", self.box.image, "-c",
                                  "seq 1 200000 | sha256sum >/dev/null")  # fmt: skip
        for k in levels:
            m = Measurement(f"{k} concurrent nested jobs (wall)", self.mode, "s")
            script = (
                f"s=$(date +%s%N); for i in $(seq {k}); do ( {run} || echo FAIL ) & done; "
                "wait; e=$(date +%s%N); echo $((e - s))"
            )
            for _ in range(max(1, self.repeat // 2)):
                collect(m, self.box.nested(script))
            results.append(m)
        return results


def storage_drivers(box: BenchContainer, repeat: int) -> tuple[Measurement, Measurement]:
    """The file work in nested podman on native overlay vs fuse-overlayfs.

    Both run with the podman CLI as user podman (separate graph roots on the storage
    volume), so only the storage driver differs.
    """
    outer, results = box.outer, []
    for label, extra in (
        ("native overlay", []),
        ("fuse-overlayfs", ["--storage-opt", "overlay.mount_program=/usr/bin/fuse-overlayfs"]),
    ):
        root = f"{layout.STORAGE_MOUNT}/bench-{label.split()[0]}"
        podman = ["podman", "--root", root, "--storage-driver", "overlay", *extra]
        outer.pipe_from([*outer.podman, "save", box.image], "exec", "-i", "--user",
                        layout.PODMAN.name, BENCH_NAME, *podman, "load")  # fmt: skip
        m = Measurement(f"10k small files (nested, {label})", outer.mode, "s")
        for _ in range(min(repeat, 3)):
            result = outer.exec(
                BENCH_NAME, *podman, "run", "--rm", "-i", "--cgroups=disabled",
                "--network=none", "--entrypoint", "sh", box.image,
                user=layout.PODMAN.name, input=FILE_WORK, check=False, timeout=900,
            )  # fmt: skip
            sample_ns(m, result)
        outer.exec(BENCH_NAME, "rm", "-rf", root, check=False)
        results.append(m)
    return results[0], results[1]
