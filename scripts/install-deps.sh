#!/bin/sh
# Install the host packages pipglr's build needs (Debian/Ubuntu, as root): podman,
# the rootless helpers, mmdebstrap for offline base images, python3-venv for the
# tooling, plus any packages named as arguments. Installs only what is missing.
set -eu
need=""
for pkg in podman uidmap fuse-overlayfs passt slirp4netns crun mmdebstrap python3-venv xz-utils zstd "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    echo "install-deps: installing$need"
    apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need
fi
