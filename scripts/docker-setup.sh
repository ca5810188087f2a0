#!/usr/bin/env bash
# Brings up a Docker engine for CI and the Docker tests, and builds the local image they run (minkube-busybox:latest).
# Idempotent: skips whatever already works. Needs root; reads no stdin. Images are built locally (CI has no registry).
set -euo pipefail

IMAGE=${MINKUBE_TEST_IMAGE:-minkube-busybox:latest}
# Bump when the image's contents change: an image with another version is rebuilt.
IMAGE_VERSION=3
# The same image a Docker worker makes by itself when a task asks for it (src/runtime/demo-image.ts): keep the
# version and the applets equal. Only these applets get links: the vfs storage driver copies every file per container, so each link costs
# container-create time (all ~270 applets: ~450 ms per create; these: ~100 ms).
APPLETS="sh ash echo printf sleep cat true false env ls date yes test [ expr seq head tail wc grep sed awk tr cut
  sort uniq tee touch mkdir rm cp mv ln pwd id hostname uname kill ps timeout xargs find basename dirname stat httpd nc wget"
LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
WAIT_S=${DOCKERD_WAIT_S:-60}
export DEBIAN_FRONTEND=noninteractive

log() { echo "docker-setup: $*"; }

docker_ok() { docker info >/dev/null 2>&1; }

# Installs the Debian packages for what is asked ("engine", "busybox") when it is missing.
ensure_packages() {
  local want missing=()
  for want in "$@"; do
    case $want in
      engine) command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 || missing+=(docker.io) ;;
      busybox) static_busybox >/dev/null 2>&1 || missing+=(busybox-static) ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]} and apt-get is not available"; return 1
  fi
  log "installing ${missing[*]}"
  apt-get update -q </dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

start_dockerd() {
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is already running; waiting for it to answer"
    return 0
  fi
  # A pid file left by a dead daemon makes a new one refuse to start.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  log "starting dockerd (log: $LOG)"
  nohup dockerd --storage-driver=vfs --iptables=false --bridge=none >"$LOG" 2>&1 </dev/null &
  disown || true
}

wait_for_docker() {
  local deadline=$((SECONDS + WAIT_S))
  while [ $SECONDS -lt $deadline ]; do
    docker_ok && return 0
    sleep 0.5
  done
  log "docker info still fails after ${WAIT_S}s; dockerd log tail:"
  tail -n 40 "$LOG" 2>/dev/null || true
  docker info 2>&1 | tail -n 5 || true
  return 1
}

# The image has no libc, so only a statically linked busybox runs in it (ldd fails on static binaries).
static_busybox() {
  local p
  for p in /bin/busybox /usr/bin/busybox "$(command -v busybox 2>/dev/null || true)"; do
    [ -n "$p" ] && [ -x "$p" ] && ! ldd "$p" >/dev/null 2>&1 && { echo "$p"; return 0; }
  done
  return 1
}

build_image() {
  local bb root applet
  bb=$(static_busybox) || { log "no statically linked busybox found"; return 1; }
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/proc" "$root/dev" "$root/sys"
  chmod 1777 "$root/tmp"
  cp "$bb" "$root/bin/busybox"
  for applet in $APPLETS; do
    ln -sf busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  log "building $IMAGE from $bb"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' \
    -c "LABEL minkube.image.version=$IMAGE_VERSION" - "$IMAGE" >/dev/null
  rm -rf "$root"
  log "built $IMAGE"
}

# The image's minkube.image.version label, empty when there is no such image.
image_version() {
  docker image inspect -f '{{index .Config.Labels "minkube.image.version"}}' "$IMAGE" 2>/dev/null || true
}

main() {
  if docker_ok; then
    log "docker is already up"
  else
    ensure_packages engine
    start_dockerd
    wait_for_docker
  fi
  if [ "$(image_version)" != "$IMAGE_VERSION" ]; then
    ensure_packages busybox
    build_image
  fi
  log "ready: $IMAGE"
}

main "$@"
