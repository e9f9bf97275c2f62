#!/usr/bin/env bash
# Validates the deployment files in deploy/ against their schemas, since no container engine or
# cluster runs where the tests run:
#   - Kubernetes manifests (deploy/kubernetes/*.yaml): kubernetes-validate (PyPI), which ships
#     the Kubernetes JSON schemas per version; strict (unknown fields refused), every version in
#     K8S_VERSIONS, and a kind without a schema is an error too.
#   - deploy/compose.yaml: check-jsonschema (PyPI) with the compose-spec schema it vendors.
#   - deploy/Dockerfile: dockerfile-utils lint (npm; instructions, flags, arguments).
#   - deploy/systemd/*.service: systemd-analyze verify (Debian's systemd package, installed if
#     missing), with ExecStart's binary replaced by a stand-in executable (the unit names where
#     the operator installs sck). Any warning it prints fails the check.
# The tools are pinned and installed under target/deploy-tools/ (reused while the pins match);
# the only network used is PyPI, npm and Debian's packages.
#
# Usage: scripts/validate-deploy.sh [DIR]     validate DIR (default: deploy/); non-zero on any problem
#        scripts/validate-deploy.sh --self-test   validate deploy/, then break a copy of each kind of
#                                                 file in turn and require the validation to fail
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PASSED=0
FAILED=0
TOOLS="$ROOT/target/deploy-tools"
K8S_VERSIONS="1.29.0 1.37.0"

PY_REQUIREMENTS='kubernetes-validate==1.37.0
check-jsonschema==0.39.0
attrs==26.1.0
certifi==2026.10.18
charset-normalizer==3.5.2
click==8.5.1
idna==3.20
importlib_resources==7.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
packaging==26.3
PyYAML==6.0.3
referencing==0.37.0
regress==2026.9.1
requests==2.34.2
rpds-py==2026.9.1
ruamel.yaml==0.19.1
typing_extensions==4.16.0
urllib3==2.8.0'

NPM_PACKAGE='{
  "private": true,
  "dependencies": { "dockerfile-utils": "0.16.3" },
  "overrides": {
    "dockerfile-ast": "0.7.1",
    "vscode-languageserver-textdocument": "1.0.16",
    "vscode-languageserver-types": "3.18.5"
  }
}'

die() {
    echo "validate-deploy: $*" >&2
    exit 1
}

# Installs (or reuses) the pinned tools under target/deploy-tools/.
install_tools() {
    mkdir -p "$TOOLS"
    local venv="$TOOLS/venv"
    if [[ ! -x "$venv/bin/python" ]] || ! cmp -s <(echo "$PY_REQUIREMENTS") "$venv/requirements.txt"; then
        echo "validate-deploy: installing Python validators into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
        echo "$PY_REQUIREMENTS" >"$venv/requirements.in"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$venv/requirements.in" \
            || die "pip install of the validators failed"
        mv "$venv/requirements.in" "$venv/requirements.txt"
    fi
    local npm_dir="$TOOLS/npm"
    if [[ ! -x "$npm_dir/node_modules/.bin/dockerfile-utils" ]] \
        || ! cmp -s <(echo "$NPM_PACKAGE") "$npm_dir/package.json"; then
        command -v npm >/dev/null || die "npm not found (Node.js 20 with npm is needed)"
        echo "validate-deploy: installing dockerfile-utils into $npm_dir"
        rm -rf "$npm_dir"
        mkdir -p "$npm_dir"
        echo "$NPM_PACKAGE" >"$npm_dir/package.json.in"
        cp "$npm_dir/package.json.in" "$npm_dir/package.json"
        (cd "$npm_dir" && npm install --no-audit --no-fund --no-save --loglevel=error) \
            || { rm -f "$npm_dir/package.json"; die "npm install of dockerfile-utils failed"; }
        rm "$npm_dir/package.json.in"
    fi
    if ! command -v systemd-analyze >/dev/null; then
        [[ $(id -u) == 0 ]] || die "systemd-analyze not found; install Debian's systemd package"
        echo "validate-deploy: installing systemd (for systemd-analyze)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null \
            || die "apt-get install systemd failed"
    fi
}

# Runs a checker; fails if it exits non-zero or, unless $2 is empty, prints a line matching $2
# (so that warnings count).
run_check() {
    local label=$1 pattern=$2 output status=0
    shift 2
    output=$("$@" 2>&1) || status=$?
    if [[ $status != 0 ]] || { [[ -n $pattern ]] && grep -Eq "$pattern" <<<"$output"; }; then
        echo "FAIL $label"
        sed 's/^/    /' <<<"$output"
        FAILED=$((FAILED + 1))
        return 1
    fi
    echo "ok   $label"
    PASSED=$((PASSED + 1))
}

# Validates every deployment file in $1; returns non-zero if any check failed.
validate() {
    local dir=$1 failed=0 file version
    [[ -d $dir ]] || die "$dir: no such directory"
    local manifests=("$dir"/kubernetes/*.yaml)
    [[ -e ${manifests[0]} ]] || die "$dir/kubernetes: no manifests"
    for version in $K8S_VERSIONS; do
        for file in "${manifests[@]}"; do
            run_check "kubernetes $version ${file#"$dir"/}" '^(WARN|ERROR)' \
                "$TOOLS/venv/bin/kubernetes-validate" --strict -k "$version" "$file" || failed=1
        done
    done
    [[ -f $dir/compose.yaml ]] || die "$dir/compose.yaml missing"
    run_check "compose-spec compose.yaml" '' \
        "$TOOLS/venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$dir/compose.yaml" || failed=1
    [[ -f $dir/Dockerfile ]] || die "$dir/Dockerfile missing"
    run_check "dockerfile-utils lint Dockerfile" '.' \
        "$TOOLS/npm/node_modules/.bin/dockerfile-utils" lint "$dir/Dockerfile" || failed=1
    local units=("$dir"/systemd/*.service)
    [[ -e ${units[0]} ]] || die "$dir/systemd: no units"
    local stand_in scratch
    stand_in=$(command -v true)
    for file in "${units[@]}"; do
        scratch=$(mktemp -d)
        grep -q '^ExecStart=/usr/local/bin/sck ' "$file" \
            || { echo "FAIL ${file#"$dir"/}: ExecStart must run /usr/local/bin/sck"; failed=1; rm -rf "$scratch"; continue; }
        sed "s#^ExecStart=/usr/local/bin/sck #ExecStart=$stand_in #" "$file" >"$scratch/$(basename "$file")"
        run_check "systemd-analyze verify ${file#"$dir"/}" '.' \
            systemd-analyze verify --man=no "$scratch/$(basename "$file")" || failed=1
        rm -rf "$scratch"
    done
    return $failed
}

# Breaks a copy of deploy/ in one way ($2: sed expression on file $1) and requires failure.
expect_refused() {
    local file=$1 expression=$2 copy
    copy=$(mktemp -d)
    cp -r "$ROOT/deploy/." "$copy/"
    sed -i -e "$expression" "$copy/$file"
    if cmp -s "$ROOT/deploy/$file" "$copy/$file"; then
        rm -rf "$copy"
        die "self-test: '$expression' changed nothing in $file"
    fi
    if (validate "$copy") >"$copy.log" 2>&1; then
        cat "$copy.log"
        rm -rf "$copy" "$copy.log"
        die "self-test: a broken $file ($expression) was accepted"
    fi
    echo "ok   broken $file refused: $(grep -m1 '^FAIL' "$copy.log")"
    PASSED=$((PASSED + 1))
    rm -rf "$copy" "$copy.log"
}

install_tools
status=0
if [[ ${1:-} == --self-test ]]; then
    validate "$ROOT/deploy" || status=1
    expect_refused kubernetes/deployment.yaml 's/terminationGracePeriodSeconds:/terminationGracePeriod:/'
    expect_refused kubernetes/deployment.yaml 's/containerPort: 8080/containerPort: http/'
    expect_refused kubernetes/service.yaml 's/^kind: Service/kind: Servic/'
    expect_refused compose.yaml 's/condition: service_healthy/condition: service_happy/'
    expect_refused compose.yaml 's/^  opa:$/  opa:\n    imagee: x/'
    expect_refused Dockerfile 's/^EXPOSE 8080/EXPOSE http/'
    expect_refused Dockerfile 's/^HEALTHCHECK --interval/HEALTHCHECK --intervall/'
    expect_refused systemd/sck.service 's/^RestartSec=/RestartSecs=/'
    expect_refused systemd/sck.service 's/^Type=exec/Type=exe/'
else
    validate "${1:-$ROOT/deploy}" || status=1
fi
echo "validate-deploy: $PASSED passed, $FAILED failed"
exit $status
