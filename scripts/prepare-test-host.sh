#!/bin/sh
# Prepare a Debian 12 machine like our CI hosts for the pipglr test suite (as root).
# Everything here works around *this host*, never the image or the runlabels:
#  - rootful podman: runc (crun 1.8 refuses the v1 "hybrid" cgroup layout) and
#    ulimits below the sandbox's hard limits;
#  - /dev/fuse and /dev/net/tun are 0600 here (0666 on normal distros);
#  - a dedicated unprivileged user with exactly one 65539-id subuid/subgid range;
#  - on a v1 hybrid host, that user's podman must see only cgroup v2: the wrapper
#    /usr/local/bin/pipglr-test-podman runs its podman inside a persistent private
#    mount namespace where /sys/fs/cgroup is the unified hierarchy, in a cgroup
#    delegated to the user. On cgroup v2 hosts it is a plain `runuser`.
set -eu
TEST_USER=${PIPGLR_TEST_USER:-pipglr-test}
SUB_START=${PIPGLR_TEST_SUBID_START:-2000000}
SUB_COUNT=65539
STATE=/run/pipglr-test

here=$(cd "$(dirname "$0")" && pwd)
# runc: see above; nftables: the unit tests check the egress guard's rules with nft;
# docker-registry and skopeo: the publish tests push to a registry on 127.0.0.1;
# rsync: gitlab-ci-local copies the project with it; openssl: the registry-credential
# tests give their password-protected registry a certificate from a throw-away CA;
# prometheus: the monitoring tests start a real Prometheus (on a free loopback port)
# scraping pipglr, and promtool checks and unit-tests the shipped alert rules.
sh "$here/install-deps.sh" runc nftables docker-registry skopeo rsync openssl prometheus
# The package's own daemon (:9090) and node exporter are not needed: install-deps keeps
# them from starting; keep them from starting at boot too.
if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service prometheus-node-exporter.service \
        >/dev/null 2>&1 || true
fi

# gitlab-ci-local (npm) runs .gitlab-ci.yml's jobs in tests/image/test_localpipeline.py.
# 4.73.0 is the newest release that runs on Node.js 20 (4.74 needs Set.union, Node 22).
GCL_VERSION=4.73.0
GCL_DIR=/usr/local/lib/pipglr-test-tools
if [ "$("$GCL_DIR/node_modules/.bin/gitlab-ci-local" --version 2>/dev/null)" != "$GCL_VERSION" ]; then
    if command -v npm >/dev/null 2>&1; then
        npm install --prefix "$GCL_DIR" --no-audit --no-fund --loglevel=error "gitlab-ci-local@$GCL_VERSION"
    else
        echo "prepare-test-host: no npm: the local-pipeline tests cannot run (apt-get install npm)"
    fi
fi

hybrid=false
if [ -d /sys/fs/cgroup/unified ] && [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
    hybrid=true
fi

if $hybrid || [ "$(ulimit -Hn)" -lt 1048576 ]; then
    mkdir -p /etc/containers
    cat > /etc/containers/containers.conf <<CONF
# written by pipglr scripts/prepare-test-host.sh for this test host
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
fi
chmod 0666 /dev/fuse /dev/net/tun

if ! id "$TEST_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh "$TEST_USER"
fi
uid=$(id -u "$TEST_USER")
wanted="$TEST_USER:$SUB_START:$SUB_COUNT"
changed=false
grep -qx "$wanted" /etc/subuid 2>/dev/null && grep -qx "$wanted" /etc/subgid 2>/dev/null || changed=true
# Exactly one range per user: drop whatever useradd added.
for f in /etc/subuid /etc/subgid; do
    touch "$f"
    grep -v "^$TEST_USER:" "$f" > "$f.new" || true
    echo "$TEST_USER:$SUB_START:$SUB_COUNT" >> "$f.new"
    mv "$f.new" "$f"
done
home=$(getent passwd "$TEST_USER" | cut -d: -f6)
if $changed; then
    # Storage written under another id range is unusable: start it afresh.
    rm -rf "$home/.local/share/containers" "$STATE/xdg-$uid"
fi
runuser -u "$TEST_USER" -- mkdir -p "$home/.config/containers"
cat > "$home/.config/containers/storage.conf" <<CONF
[storage]
driver = "overlay"
CONF
chown "$TEST_USER:" "$home/.config/containers/storage.conf"

mkdir -p "$STATE"
runtime_dir=$STATE/xdg-$uid
mkdir -p "$runtime_dir"
chown "$TEST_USER:" "$runtime_dir"
chmod 0700 "$runtime_dir"

if $hybrid; then
    # A persistent mount namespace that sees only cgroup v2, kept by a bind mount.
    if [ ! -e "$STATE/mntns" ] || ! nsenter --mount="$STATE/mntns" true 2>/dev/null; then
        mount --bind "$STATE" "$STATE" 2>/dev/null || true
        mount --make-private "$STATE"
        touch "$STATE/mntns"
        unshare --mount="$STATE/mntns" --propagation private \
            sh -c 'mount --bind /sys/fs/cgroup/unified /sys/fs/cgroup'
    fi
    nsenter --mount="$STATE/mntns" sh -c "mkdir -p /sys/fs/cgroup/$TEST_USER && chown -R $TEST_USER: /sys/fs/cgroup/$TEST_USER"
    enter="nsenter --mount=$STATE/mntns --wd=\"\$PWD\""
    cgroup_step="echo \$\$ > /sys/fs/cgroup/$TEST_USER/cgroup.procs;"
else
    enter=""
    cgroup_step=""
fi

cat > /usr/local/bin/pipglr-test-podman <<WRAP
#!/bin/sh
# Run podman as $TEST_USER (rootless). Written by scripts/prepare-test-host.sh.
exec $enter sh -c '$cgroup_step exec runuser -u $TEST_USER -- env XDG_RUNTIME_DIR=$runtime_dir HOME=$home podman "\$@"' pipglr-test-podman "\$@"
WRAP
chmod 0755 /usr/local/bin/pipglr-test-podman
pipglr-test-podman system migrate
echo "prepare-test-host: rootless podman for $TEST_USER: $(pipglr-test-podman info --format '{{.Host.CgroupsVersion}} cgroups, {{.Store.GraphDriverName}} storage')"
