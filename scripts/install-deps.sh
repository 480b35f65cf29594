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
    # prometheus is installed for its binaries (the monitoring tests start their own on a
    # free port): keep its maintainer scripts from starting the daemon on :9090 and the
    # node exporter it recommends (invoke-rc.d and deb-systemd-invoke ask policy-rc.d;
    # 101 = not allowed; anything else may start), unless this host has a policy already.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        cat > "$policy" <<'POLICY'
#!/bin/sh
# written by pipglr scripts/install-deps.sh while it installs; removed afterwards
case "$1" in prometheus*) exit 101 ;; esac
exit 0
POLICY
        chmod 0755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need
fi
