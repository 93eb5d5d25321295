#!/usr/bin/env bash
# Build local stand-ins for the compose stack's upstream images when no container registry
# answers: a Debian base (debootstrap from this machine's own apt mirror), then redis-server,
# nginx and Python 3.11 from Debian's packages on top of it. Each step says what it does and how
# long it took; an image that already exists is kept (FORCE=1 rebuilds).
#
#   deploy/local-images.sh        # → authbench-base:bookworm, authbench-redis:local,
#                                 #   authbench-nginx:local, authbench-python:local
# Then: BASE_IMAGE=authbench-python:local REDIS_IMAGE=authbench-redis:local \
#       NGINX_IMAGE=authbench-nginx:local docker-compose ... (make compose-test does this).
set -euo pipefail

SUITE=bookworm
BASE=authbench-base:$SUITE

step() {  # step NAME COMMAND…: run it, then say how long it took
  local name=$1 started elapsed_ms
  shift
  started=$(date +%s%N)
  echo "local-images: $name…"
  "$@"
  elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
  printf 'local-images: %s done in %d.%d s\n' "$name" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))
}

exists() { docker image inspect "$1" >/dev/null 2>&1 && [ "${FORCE:-0}" != 1 ]; }

mirror() {  # the Debian mirror this machine's apt already uses (no host is written down here)
  local found
  found=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' \
          | grep -v security | head -n1)
  [ -n "$found" ] || found=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -n1)
  [ -n "$found" ] || { echo "local-images: no Debian mirror in the apt sources" >&2; exit 1; }
  echo "$found"
}

build_base() {
  local rootfs
  rootfs=$(mktemp -d /tmp/authbench-rootfs.XXXXXX)
  if ! debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$(mirror)" \
      >"$rootfs.log" 2>&1; then
    tail -n 20 "$rootfs.log" >&2
    rm -rf "$rootfs" "$rootfs.log"
    exit 1
  fi
  tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

build_on_base() {  # build_on_base TAG "PACKAGES" CMD-JSON
  # The host's CA bundle goes in too: where TLS to the package registries is intercepted, pip
  # inside a container trusts what the host trusts (harmless where it is not).
  local tag=$1 packages=$2 cmd=$3 context
  context=$(mktemp -d)
  cp /etc/ssl/certs/ca-certificates.crt "$context/host-ca.crt"
  cat >"$context/Dockerfile" <<DOCKERFILE
FROM $BASE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \\
    --no-install-recommends $packages >/dev/null && rm -rf /var/lib/apt/lists/*
COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD $cmd
DOCKERFILE
  if ! docker build --network host -t "$tag" "$context" >"$context/build.log" 2>&1; then
    tail -n 20 "$context/build.log" >&2
    rm -rf "$context"
    exit 1
  fi
  rm -rf "$context"
}

command -v docker >/dev/null || { echo "local-images: docker is not installed" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "local-images: apt-get install debootstrap" >&2; exit 1; }

exists "$BASE" && echo "local-images: $BASE exists" || step "Debian $SUITE base ($BASE)" build_base
exists authbench-redis:local && echo "local-images: authbench-redis:local exists" ||
  step "redis image" build_on_base authbench-redis:local "redis-server" '["redis-server"]'
exists authbench-nginx:local && echo "local-images: authbench-nginx:local exists" ||
  step "nginx image" build_on_base authbench-nginx:local "nginx" '["nginx", "-g", "daemon off;"]'
exists authbench-python:local && echo "local-images: authbench-python:local exists" ||
  step "Python image" build_on_base authbench-python:local "python3 python3-venv" '["python3"]'
