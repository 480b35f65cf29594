"""Building the image: everything computed for it and the build itself.

Belongs here: the build settings turned into files (``units``: systemd units,
``labels``: the runlabels), the gitlab-runner binary and helper archive
(``runnerbin``, ``helperarchive``), the build context (``context``), the podman-py
engine (``engine``), the offline Debian base (``base``), the build sequence
(``imagebuild``) and the provenance labels a build records (``provenance``).

Does not belong here: deciding whether to publish or pushing (:mod:`pipglr.release`),
running the image on a host (:mod:`pipglr.ops`), in-image code (:mod:`pipglr.guest`).
Imports only the shared top modules and the guest (for facts the image shares).
"""
