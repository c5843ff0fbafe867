#!/usr/bin/env bash
# Offline checks of template.yaml: sam validate --lint, then the SAM transform, and cfn-lint
# and checkov on the transformed template (neither looks inside AWS::Serverless::* resources).
# Runs every step, then exits non-zero if any failed. No AWS credentials needed.
set -uo pipefail

cd "$(dirname "$0")/.."
TEMPLATE=${TEMPLATE:-template.yaml}
OUT_DIR=${OUT_DIR:-.aws-sam/template-checks}
SAM_BIN=${SAM_BIN:-.tools/sam/bin/sam}
CFN_LINT_BIN=${CFN_LINT_BIN:-.tools/sam/bin/cfn-lint}
CHECKOV_BIN=${CHECKOV_BIN:-.tools/checkov/bin/checkov}
SAM_PYTHON=${SAM_PYTHON:-$(dirname "$SAM_BIN")/python}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export SAM_CLI_TELEMETRY=0

for tool in "$SAM_BIN" "$CFN_LINT_BIN" "$CHECKOV_BIN" "$SAM_PYTHON"; do
    if [ ! -x "$tool" ]; then
        echo "missing $tool: run 'make tools'" >&2
        exit 2
    fi
done

mkdir -p "$OUT_DIR"
TRANSFORMED="$OUT_DIR/transformed.json"
rm -f "$TRANSFORMED"
failures=()

step() {
    local name=$1
    shift
    echo "==> $name"
    local start=$SECONDS
    if "$@"; then
        echo "    ok ($((SECONDS - start)) s)"
    else
        echo "    FAILED ($((SECONDS - start)) s)"
        failures+=("$name")
    fi
}

step "sam validate --lint" "$SAM_BIN" validate --lint --template "$TEMPLATE"
step "SAM transform -> $TRANSFORMED" "$SAM_PYTHON" tools/transform_template.py "$TEMPLATE" "$TRANSFORMED"
if [ -s "$TRANSFORMED" ]; then
    step "cfn-lint (transformed)" "$CFN_LINT_BIN" "$TRANSFORMED"
    step "checkov (transformed)" "$CHECKOV_BIN" --skip-download --quiet --compact \
        --framework cloudformation --file "$TRANSFORMED"
fi

if [ ${#failures[@]} -gt 0 ]; then
    printf 'template checks failed: %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "template checks passed"
