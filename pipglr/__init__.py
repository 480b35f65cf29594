"""pipglr: a rootless podman-in-podman GitLab Runner, built and operated from Python.

The package has two halves:

* host side (``settings``, ``units``, ``labels``, ``runnerbin``, ``context``,
  ``engine``): computes everything the image needs and builds it; uses jinja2 and
  podman-py.
* guest side (``guest`` and the stdlib-only modules it imports: ``layout``,
  ``subids``, ``runnerconfig``): copied into the image and run there by systemd units
  and runlabels. Guest modules must import nothing outside the standard library.
"""

from __future__ import annotations

__version__ = "0.1.0"
