#!/usr/bin/env bash
# The whole thing on a fresh Debian 12 machine (root), with no image registry on the internet:
#   1. install ocibuild and the tools it is checked with (.ci/setup.sh), and scikit-learn to train the model;
#   2. train the iris model (examples/iris-server/train.py);
#   3. build the iris server for linux/amd64 + linux/arm64 on the default base, Debian trixie + python3 (3.13),
#      that ocibuild assembles from Debian packages, into an OCI layout (out/iris);
#   4. push it to a local registry (Debian's docker-registry on 127.0.0.1);
#   5. run it with runc and ask it for a prediction over HTTP; stop it with SIGTERM;
#   6. change one line of the server, rebuild and push again: only the code layer moves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
PY=${PYTHON:-python3}
OUT=${OUT:-out}
export OCIBUILD_CACHE=${OCIBUILD_CACHE:-$PWD/$OUT/cache}
mkdir -p "$OUT"
work=$(mktemp -d)
APP=$work/iris-server   # a copy, so step 5 can edit it
reg_pid=""
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null || true
  runc delete -f "iris-demo-$$" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== 1. train the model"
"$PY" -m pip install -q --disable-pip-version-check scikit-learn==1.6.1 joblib==1.5.2
"$PY" examples/iris-server/train.py
cp -r examples/iris-server "$APP"

echo "== 2. build linux/amd64 + linux/arm64 into an OCI layout (base: Debian packages, no registry)"
"$PY" -m ocibuild build "$APP" --output "oci:$OUT/iris:v1"

echo "== 3. push to a local registry"
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "127.0.0.1:%s"}\n' \
  "$work/registry" "$port" > "$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
"$PY" -m ocibuild build "$APP" --output "docker://127.0.0.1:$port/iris:v1"

echo "== 4. run the amd64 image with runc and ask for a prediction"
bundle="$work/bundle"
mkdir -p "$bundle"
skopeo copy -q --override-arch amd64 "oci:$OUT/iris:v1" "oci:$work/flat:v1"
umoci raw unpack --image "$work/flat:v1" "$bundle/rootfs"
umoci raw runtime-config --image "$work/flat:v1" --rootfs "$bundle/rootfs" "$bundle/config.json"
# no tty; share the host's network so the server is reachable on 127.0.0.1:8080
jq '.process.terminal = false | .linux.namespaces |= map(select(.type != "network"))' "$bundle/config.json" \
  > "$bundle/c.json" && mv "$bundle/c.json" "$bundle/config.json"
runc run --detach --bundle "$bundle" "iris-demo-$$" >"$work/server.log" 2>&1
for _ in $(seq 100); do curl -fs http://127.0.0.1:8080/healthz >/dev/null && break; sleep 0.2; done
echo "healthz: $(curl -fs http://127.0.0.1:8080/healthz)"
echo "predict: $(curl -fs -X POST -H 'Content-Type: application/json' \
  -d '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}' http://127.0.0.1:8080/predict)"
runc kill "iris-demo-$$" TERM
for _ in $(seq 50); do [ "$(runc state "iris-demo-$$" 2>/dev/null | jq -r .status)" = stopped ] && break; sleep 0.1; done
echo "server state after SIGTERM: $(runc state "iris-demo-$$" | jq -r .status)"
runc delete "iris-demo-$$"

echo "== 5. change one line of the server, rebuild and push"
sed -i 's/^VERSION = "1"/VERSION = "2"/' "$APP/server.py"
start=$(date +%s.%N)
"$PY" -m ocibuild build "$APP" --output "docker://127.0.0.1:$port/iris:v1"
echo "rebuild + push after a one-line edit: $(echo "$(date +%s.%N) - $start" | bc) s"
