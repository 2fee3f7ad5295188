#!/usr/bin/env bash
# The whole thing on a fresh Debian 12 machine, no image registry needed:
#   1. install ocibuild and the tools it is checked with (.ci/setup.sh),
#   2. make a busybox base image with ocibuild itself from Debian's busybox-static package,
#   3. build examples/hello on it (OCI layout + OCI archive + docker archive),
#   4. run the image with runc (needs root) and print its output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
PY=${PYTHON:-python3}
OUT=${OUT:-out}
export OCIBUILD_CACHE=${OCIBUILD_CACHE:-$PWD/$OUT/cache}
mkdir -p "$OUT"

echo "== 1. a busybox base, built by ocibuild from Debian's busybox-static package"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt-get download drops to the _apt user
(cd "$work" && apt-get download -q busybox-static >/dev/null)
dpkg-deb -x "$work"/busybox-static_*.deb "$work/deb"
mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp" "$work/rootfs/etc"
cp "$work/deb/bin/busybox" "$work/rootfs/bin/busybox"
for applet in sh echo uname cat ls env id sleep; do ln -sf busybox "$work/rootfs/bin/$applet"; done
"$PY" -m ocibuild build "$work/rootfs" --base scratch --layer "$work/rootfs:/" \
  --env PATH=/bin --cmd /bin/sh --workdir / --output "oci:$OUT/bases/busybox:latest"

echo "== 2. examples/hello on that base, written as an OCI layout, an OCI archive and a docker archive"
"$PY" -m ocibuild build examples/hello --base "oci:$OUT/bases/busybox:latest" \
  --output "oci:$OUT/hello:v1" --output "oci-archive:$OUT/hello.tar:v1" \
  --output "docker-archive:$OUT/hello-docker.tar:hello:v1"

echo "== 3. run it with runc (no daemon)"
if [ "$(id -u)" -ne 0 ]; then
  echo "(skipping the run: runc needs root here; try: podman load -i $OUT/hello-docker.tar && podman run hello:v1)"
  exit 0
fi
bundle="$work/bundle"
mkdir -p "$bundle"
umoci raw unpack --image "$OUT/hello:v1" "$bundle/rootfs"
umoci raw runtime-config --image "$OUT/hello:v1" --rootfs "$bundle/rootfs" "$bundle/config.json"
jq '.process.terminal = false' "$bundle/config.json" > "$bundle/c.json" && mv "$bundle/c.json" "$bundle/config.json"
runc run --bundle "$bundle" "ocibuild-demo-$$"
