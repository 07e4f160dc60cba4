#!/usr/bin/env bash
# deps.sh - installs the Debian packages casfs builds, runs and tests with.
# Run as root on Debian 12. Skips apt entirely when everything is present.
set -eu

packages=(
	build-essential cmake pkg-config curl jq
	libfuse3-dev fuse3 attr
	libcurl4-openssl-dev libcjson-dev libmicrohttpd-dev liblmdb-dev
	libgnutls28-dev openssl
	libcmocka-dev
	clang libclang-rt-14-dev clang-format valgrind
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q "${missing[@]}"
fi
