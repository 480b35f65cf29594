"""pipglr: a rootless podman-in-podman GitLab Runner, built and operated from Python.

Layers, lowest first; a module imports only from its own layer or a lower one
(``tests/unit/test_layers.py`` enforces it):

0. shared and image: the top modules every side uses (``layout``, ``errors``,
   ``settings``, ``subids``, ``runnerconfig``, ``netsettings``, ``netboot``,
   ``chain``) and
   ``guest`` (the in-image services). They are copied into the image, so they import
   only the standard library and the Python libraries the image installs from Debian
   (``tests/unit/test_guest.py`` enforces it), and never a host package.
1. ``build``: computes what the image needs and builds it (jinja2, podman-py).
2. ``release``: provenance decisions, publishing, downstream triggers.
3. ``ops``: the ``pipglr`` command and what it drives on the operator's host.
4. ``bench``: benchmarks of nesting against host podman.

``tasks.py`` (invoke) sits above them all: its tasks parse, call one function, print.
"""

from __future__ import annotations

__version__ = "0.1.0"
