#!/usr/bin/env bash
# `make test-sam`: Docker up (tools/sam_docker.sh), the `sam` tests, Docker back as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
status=0
env_line=$(bash tools/sam_docker.sh up) || status=$?
if [ "$status" = 3 ]; then
  echo "make test-sam: SKIPPED, Docker is not running here (start Docker, or run as root to let it start docker.io)" >&2
  exit 0
elif [ "$status" != 0 ]; then
  exit "$status"
fi
trap 'bash tools/sam_docker.sh down' EXIT
export "${env_line:?}"
[ -n "$DOCKER_HOST" ] || unset DOCKER_HOST
echo "make test-sam: Docker ready in $((SECONDS - started)) s" >&2
.venv/bin/python -m pytest -m sam -p no:cacheprovider --durations=0 "$@"
