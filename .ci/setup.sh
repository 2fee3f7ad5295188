#!/usr/bin/env bash
# Install everything the tests, the demo and the benchmarks need on a fresh Debian 12 machine (root).
# Idempotent: skips apt when every package is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  skopeo umoci runc podman buildah oci-image-tool    # independent image tools and runtimes
  catatonit                                           # the pause binary podman kube play needs
  mmdebstrap debootstrap busybox-static               # test base images made from Debian packages
  qemu-user-static binfmt-support arch-test           # arm64 images under qemu-user binfmt
  docker-registry apache2-utils openssl               # a real registry for the registry tests
  jq curl bc xz-utils ca-certificates util-linux git
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
