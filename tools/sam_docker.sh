#!/usr/bin/env bash
# Docker for `make test-sam`: `up` makes sure a daemon runs and the Lambda Python 3.13 base image is there,
# `down` undoes what `up` started. Exit status of `up`: 0 ready, 3 no Docker here (the caller skips).
#
# - A daemon that already answers (Docker Desktop, a CI runner's) is used as it is, with its own networking.
# - Otherwise, as root, Debian's docker.io is installed if missing and dockerd started here, its data kept in
#   .tools/docker (so images survive between runs), with no NAT and nothing forwarded off its bridge:
#   containers reach this machine only (SAM CLI also gets --container-dns 127.0.0.1).
# - public.ecr.aws/lambda/python:3.13-<arch> is pulled; where public.ecr.aws cannot be reached, a stand-in is
#   made from Debian packages: trixie's Python 3.13 and AWS's runtime interface client (awslambdaric).
#   SAM CLI adds its own runtime interface emulator on top, as it does to the real image.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${SAM_DOCKER_STATE:-$PWD/.tools/docker}
SOCKET=$STATE/docker.sock
PIDFILE=$STATE/dockerd.pid
MARK=$STATE/started-here
FORWARD_DROP=(FORWARD -i docker0 ! -o docker0 -j DROP)
AWSLAMBDARIC=(awslambdaric==4.2.2 snapshot-restore-py==1.0.0)
case "$(uname -m)" in
  aarch64 | arm64) ARCH=arm64 DEB_ARCH=arm64 WHEEL=manylinux2014_aarch64 ;;
  *) ARCH=x86_64 DEB_ARCH=amd64 WHEEL=manylinux2014_x86_64 ;;
esac
IMAGE=public.ecr.aws/lambda/python:3.13-$ARCH

say() { echo "sam-docker: $*" >&2; }

# Where `docker` and SAM CLI find the daemon: the one this script starts, or the usual one.
docker_host() { if [ -f "$MARK" ]; then echo "unix://$SOCKET"; else echo "${DOCKER_HOST:-}"; fi; }
d() { DOCKER_HOST=$(docker_host) docker "$@"; }

up() {
  if command -v docker > /dev/null && d info > /dev/null 2>&1; then
    say "using the running Docker daemon${DOCKER_HOST:+ at $DOCKER_HOST}$([ -f "$MARK" ] && echo " (started here)")"
  else
    start_dockerd || return 3
  fi
  image
  echo "DOCKER_HOST=$(docker_host)"
}

start_dockerd() {
  if [ "$(id -u)" != 0 ]; then
    say "Docker is not running, and only root may start it here: start Docker to run these tests"
    return 1
  fi
  if ! command -v dockerd > /dev/null || ! command -v iptables > /dev/null; then
    say "installing docker.io and iptables (Debian packages)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      docker.io iptables; } > "$STATE.apt.log" 2>&1; then
      say "could not install docker.io ($STATE.apt.log)"
      return 1
    fi
  fi
  mkdir -p "$STATE/data"
  touch "$MARK"
  # No NAT and no iptables rules of Docker's own; the FORWARD drop keeps every packet from a container on
  # this machine (the bridge address reaches this host's services; nothing is routed beyond it).
  setsid dockerd --iptables=false --ip-masq=false --ip6tables=false --data-root "$STATE/data" \
    --exec-root "$STATE/exec" --pidfile "$PIDFILE" -H "unix://$SOCKET" > "$STATE/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do d info > /dev/null 2>&1 && break; sleep 1; done
  if ! d info > /dev/null 2>&1; then
    say "dockerd did not start ($STATE/dockerd.log)"
    down
    return 1
  fi
  iptables -C "${FORWARD_DROP[@]}" 2> /dev/null || iptables -I "${FORWARD_DROP[@]}"
  say "dockerd started ($(d info --format '{{.ServerVersion}}, {{.Driver}}'), data in $STATE/data)"
}

image() {
  if d image inspect "$IMAGE" > /dev/null 2>&1; then
    say "$IMAGE is here"
  elif timeout 120 env DOCKER_HOST="$(docker_host)" docker pull -q "$IMAGE" > /dev/null 2>&1; then
    say "pulled $IMAGE"
  else
    say "public.ecr.aws cannot be reached: making a stand-in for $IMAGE from Debian packages"
    stand_in
  fi
}

stand_in() {
  local root=$STATE/rootfs-$ARCH started=$SECONDS
  command -v debootstrap > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends debootstrap >> "$STATE.apt.log" 2>&1
  rm -rf "$root"
  debootstrap --arch="$DEB_ARCH" --variant=minbase --include=python3,ca-certificates trixie "$root" \
    http://deb.debian.org/debian > "$STATE/debootstrap.log" 2>&1 || {
    say "debootstrap failed ($STATE/debootstrap.log)"
    return 1
  }
  .venv/bin/python -m pip install -q --disable-pip-version-check --target "$root/var/runtime" --only-binary=:all: \
    --python-version 3.13 --platform "$WHEEL" --implementation cp "${AWSLAMBDARIC[@]}"
  mkdir -p "$root/var/lang/bin" "$root/var/task" "$root/opt"
  ln -sf /usr/bin/python3.13 "$root/var/lang/bin/python3.13"
  cat > "$root/var/runtime/bootstrap" << 'EOF'
#!/bin/sh
# The python3.13 runtime's bootstrap, as on Lambda: AWS's runtime interface client runs the handler.
export AWS_EXECUTION_ENV="${AWS_EXECUTION_ENV:-AWS_Lambda_python3.13}"
export PYTHONPATH="/var/runtime${PYTHONPATH:+:$PYTHONPATH}"
cd "${LAMBDA_TASK_ROOT:-/var/task}"
if [ -n "$AWS_LAMBDA_EXEC_WRAPPER" ]; then
  exec "$AWS_LAMBDA_EXEC_WRAPPER" /var/lang/bin/python3.13 -m awslambdaric "$_HANDLER"
fi
exec /var/lang/bin/python3.13 -m awslambdaric "$_HANDLER"
EOF
  cat > "$root/lambda-entrypoint.sh" << 'EOF'
#!/bin/sh
if [ $# -ne 1 ]; then echo "entrypoint requires the handler name to be the first argument" 1>&2; exit 142; fi
export _HANDLER="$1"
exec /var/runtime/bootstrap
EOF
  chmod +x "$root/var/runtime/bootstrap" "$root/lambda-entrypoint.sh"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | d import --platform "linux/$DEB_ARCH" \
    --change 'ENTRYPOINT ["/lambda-entrypoint.sh"]' --change 'WORKDIR /var/task' \
    --change 'ENV LANG=C.UTF-8 PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime' \
    - "$IMAGE" > /dev/null
  rm -rf "$root"
  say "made the stand-in $IMAGE in $((SECONDS - started)) s (kept in $STATE/data for the next run)"
}

down() {
  d ps -aq --filter label=sam.cli.container.type=lambda 2> /dev/null | xargs -r env DOCKER_HOST="$(docker_host)" \
    docker rm -f > /dev/null 2>&1 || true
  [ -f "$MARK" ] || return 0
  if [ -f "$PIDFILE" ]; then
    local pid
    pid=$(cat "$PIDFILE")
    kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2> /dev/null || break; sleep 1; done
  fi
  iptables -D "${FORWARD_DROP[@]}" 2> /dev/null || true
  ip link delete docker0 2> /dev/null || true
  rm -f "$MARK"
  say "dockerd stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
