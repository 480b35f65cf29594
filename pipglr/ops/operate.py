"""Host-side operations behind the ``pipglr`` command, one class per responsibility:

* :class:`~pipglr.ops.imageobjects.ImageObjects`: the operator's podman, the image's
  runlabels, the secrets and volumes;
* :class:`~pipglr.ops.configsecret.ConfigSecret`: the config.toml secret (read,
  checked, replaced with a backup) and ``register``;
* :class:`~pipglr.ops.lifecycle.Lifecycle`: ``up``, ``down``, logs;
* :class:`~pipglr.ops.status.StatusReport`: ``status`` and ``storage``;
* :class:`~pipglr.ops.jobimages.MaintainedImages`: ``images`` (maintained job images).

:class:`Operator` is all of them for one podman and image, what the CLI works with.
"""

from __future__ import annotations

from pipglr.ops.configsecret import ConfigSecret
from pipglr.ops.jobimages import MaintainedImages
from pipglr.ops.lifecycle import Lifecycle
from pipglr.ops.status import StatusReport


class Operator(ConfigSecret, Lifecycle, StatusReport, MaintainedImages):
    """The operator's podman and the pipglr image it works with: every operation."""
