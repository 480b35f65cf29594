"""Sample config.toml text shared by the unit tests."""

from __future__ import annotations

from pipglr import layout

#: A config pipglr accepts: one docker runner on the inner socket.
GOOD_CONFIG = f"""# my runners
concurrent = 2

[[runners]]
  name = "one"
  url = "https://gitlab.example.com/"
  token = "glrt-abc"
  executor = "docker"
  [runners.docker]
    host = "{layout.DOCKER_HOST}"
    image = "debian"
"""
