#!/bin/sh
# Install the Debian packages ds needs to build and test, when missing.
# Quick when everything is there (one dpkg-query); needs root otherwise.
set -eu
pkgs="gcc make pkg-config libjq-dev jq libcurl4-openssl-dev curl libssl-dev libzstd-dev zstd
libutf8proc-dev libopenblas-openmp-dev libyaml-dev libmicrohttpd-dev groff-base man-db python3 python3-venv python3-pip time git
openmpi-bin libopenmpi-dev"
missing=
for p in $pkgs; do
	dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "ds: missing Debian packages:$missing" >&2
	echo "ds: run as root, or: sudo apt-get install$missing" >&2
	exit 1
fi
echo "ds: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
