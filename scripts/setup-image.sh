#!/bin/sh
# Wire what pipglr computed into the image: accounts, directory owners, enabled and
# masked units. $1 is the inputs/ directory written by pipglr/build/context.py; the rendered
# units, /etc/subuid and /etc/subgid were already copied in from rootfs/.
# BUILD_TYPE=prod removes the package manager.
set -eu
inputs=$1

# useradd would append its own subid ranges: keep pipglr's computed files.
cp /etc/subuid /etc/subuid.pipglr
cp /etc/subgid /etc/subgid.pipglr
while read -r name uid gid home; do
    groupadd --gid "$gid" "$name"
    useradd --uid "$uid" --gid "$gid" --home-dir "$home" --create-home \
        --shell /bin/bash "$name"
done < "$inputs/users"
mv /etc/subuid.pipglr /etc/subuid
mv /etc/subgid.pipglr /etc/subgid

while read -r owner path; do
    mkdir -p "$path"
    chown "$owner:$owner" "$path"
done < "$inputs/owned-dirs"
# The trust store (see pipglr/build/context.py): Debian's bundle moves to where the boot
# bundle is made from; inputs/symlinks makes the old path a link to the boot bundle.
read -r system_bundle trust_store < "$inputs/trust-store"
mkdir -p "$(dirname "$system_bundle")"
mv "$trust_store" "$system_bundle"
chmod 0644 "$system_bundle"
while read -r owner link target; do
    ln -sfn "$target" "$link"
    chown -h "$owner:$owner" "$link"
done < "$inputs/symlinks"
chmod 0755 /usr/local/bin/gitlab-runner

# newuidmap/newgidmap with file capabilities instead of setuid root: run by the
# podman user they keep its euid (the owner of the new user namespace), which lets
# them write the id maps without CAP_SYS_ADMIN in a rootful outer container.
while read -r path caps; do
    chmod 0755 "$path"
    setcap "$caps" "$path"
done < "$inputs/file-caps"

# No setuid/setgid programs but those pipglr keeps (inputs/setuid-keep, with why in
# pipglr/build/context.py): a job or a compromised service user gains nothing from su,
# passwd, mount and the like.
find / -xdev -type f \( -perm -4000 -o -perm -2000 \) | grep -vxF -f "$inputs/setuid-keep" \
    | while read -r path; do chmod ug-s "$path"; done

# shellcheck disable=SC2046
systemctl mask $(cat "$inputs/mask-units")
# shellcheck disable=SC2046
systemctl enable $(cat "$inputs/enable-units")
systemctl set-default multi-user.target
# No machine id in the image: systemd makes one per container at boot. gitlab-runner
# derives its system id from it, which must differ between pipglr containers.
: > /etc/machine-id

python3 -m compileall -q /usr/lib/python3/dist-packages/pipglr

case "${BUILD_TYPE:-prod}" in
    prod)
        # No package manager in production images.
        rm -rf /usr/bin/apt /usr/bin/apt-* /usr/lib/apt /etc/apt /var/lib/apt \
            /var/cache/apt /var/log/apt /usr/bin/dpkg /usr/bin/dpkg-* /var/lib/dpkg \
            /etc/dpkg /usr/share/doc /usr/share/man
        ;;
    dev) ;;
    *) echo "setup-image.sh: BUILD_TYPE must be prod or dev, not ${BUILD_TYPE}" >&2; exit 2 ;;
esac
