#!/bin/sh
# Install the Debian packages listed (one per line) in $1, and write what is then
# installed (`package=version` lines, sorted) to $2: the build labels the image with
# that list's digest (pipglr/build/provenance.py). The list is pipglr's (pipglr/build/context.py);
# this script only installs it.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2046
apt-get install -y --no-install-recommends $(cat "$1")
apt-get clean
rm -rf /var/lib/apt/lists/*
mkdir -p "$(dirname "$2")"
dpkg-query -W -f='${binary:Package}=${Version}\n' | LC_ALL=C sort > "$2"
