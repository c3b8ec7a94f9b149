#!/bin/sh
# Installs the Debian packages shardlm needs to build and test, when missing.
# Used by `make run` (and `make deps`); .ci/run installs the same list.
set -e
PKGS="build-essential clang libclang-rt-14-dev libjansson-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev libgnutls28-dev libssl-dev libcurl4-openssl-dev curl ca-certificates"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends $missing
