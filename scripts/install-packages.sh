#!/bin/sh
# Install the Debian packages listed (one per line) in $1. The list is pipglr's
# (pipglr/context.py); this script only installs it.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2046
apt-get install -y --no-install-recommends $(cat "$1")
apt-get clean
rm -rf /var/lib/apt/lists/*
