"""Operating pipglr on a host: the ``pipglr`` command and what it drives.

Belongs here: the command line (``cli``), the operator's podman (``outer``), the
config.toml secret, the container's lifecycle and status (``operate``), config edits
(``configedit``), host checks (``doctor``), quadlet units (``quadlet``), the outer
container's privilege (``privilege``), the company-network secrets (``netops``,
``certs``).

Does not belong here: building or publishing images (:mod:`pipglr.build`,
:mod:`pipglr.release`), benchmarks (:mod:`pipglr.bench`), anything that runs inside
the image (:mod:`pipglr.guest`). May import build (labels, engine), never bench.
"""
