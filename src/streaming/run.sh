#!/bin/sh
# The streaming function's entry point: the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap)
# runs this and proxies each invocation to uvicorn on AWS_LWA_PORT. Locally: PYTHON=.venv/bin/python src/streaming/run.sh
cd "${LAMBDA_TASK_ROOT:-$(dirname "$0")/..}" || exit 1
# /opt/python: layers' packages, e.g. the dependency layer `sam sync` builds (the runtime adds it
# for handlers, but this script starts its own interpreter).
export PYTHONPATH="$PWD:/opt/python${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m uvicorn streaming.app:app --host 127.0.0.1 --port "${AWS_LWA_PORT:-8000}" \
    --no-access-log --no-server-header
