"""The stand-in helper image's files (``Containerfile``, the ``gitlab-runner-helper``
shim and :mod:`.helper_artifacts`, the shim's artifacts commands)."""
