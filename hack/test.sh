#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need when it is missing, builds, runs the
# Swift tests, then the differential test against dstack's own parser (hack/conformance).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v swift >/dev/null 2>&1; then
  if [ -x /opt/swift/usr/bin/swift ]; then export PATH="/opt/swift/usr/bin:$PATH"; else
    echo "hack/test.sh: swift is not on PATH (Swift 6.x is required)" >&2
    exit 1
  fi
fi
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
[ -f /usr/include/sqlite3.h ] || missing+=(libsqlite3-dev)   # GRDB links the system SQLite
command -v socat >/dev/null 2>&1 || missing+=(socat)          # local backend: Unix-socket bridge into replica namespaces
command -v ip >/dev/null 2>&1 || missing+=(iproute2)          # local backend: loopback up in replica namespaces
command -v curl >/dev/null 2>&1 || missing+=(curl)            # end-to-end tests read streamed responses with it
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)  # the fake API server is proven against the real kubectl
command -v openssl >/dev/null 2>&1 || missing+=(openssl)      # TLS tests of the Kubernetes client make their certificates
command -v pebble >/dev/null 2>&1 || missing+=(pebble)        # gateway HTTPS: the ACME test server (and pebble-challtestsrv, its DNS)
[ -x /usr/lib/git-core/git-daemon ] && [ -x /usr/lib/git-core/git-http-backend ] || missing+=(git)  # GitOps: sources fetched with git, served by git daemon and smart HTTP
[ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-server openssh-client)  # GitOps over SSH: a real sshd on loopback
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)  # the status page, tested in headless Chromium
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && command -v psql >/dev/null 2>&1 || missing+=(postgresql)  # the PostgreSQL store: a real server (hack/postgres.sh)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Kubernetes objects the driver writes are checked against the API's strict schemas.
if [ ! -x .build/kubernetes-validate/bin/kubernetes-validate ]; then
  echo "==> installing kubernetes-validate (PyPI) into .build/kubernetes-validate"
  python3 -m venv .build/kubernetes-validate
  .build/kubernetes-validate/bin/pip install -q kubernetes-validate
fi
export SETPOINT_REQUIRE_KUBERNETES_VALIDATE=1

# The served OpenAPI document is validated (openapi-spec-validator) and a live server is fuzzed
# from it (schemathesis), both from PyPI.
if [ ! -x .build/api-tools/bin/st ] || [ ! -x .build/api-tools/bin/openapi-spec-validator ]; then
  echo "==> installing schemathesis and openapi-spec-validator (PyPI) into .build/api-tools"
  python3 -m venv .build/api-tools
  .build/api-tools/bin/pip install -q schemathesis openapi-spec-validator
fi
export SETPOINT_REQUIRE_API_TOOLS=1
export SETPOINT_REQUIRE_SSHD=1
export SETPOINT_REQUIRE_CHROMIUM=1

# A PostgreSQL server of the tests' own (TLS, a password), stopped when the tests end.
echo "==> starting PostgreSQL for the tests (hack/postgres.sh)"
pg_dir="$(mktemp -d /tmp/setpoint-test-postgres.XXXXXX)"
eval "$(bash hack/postgres.sh start "$pg_dir")"
trap 'bash hack/postgres.sh stop "$pg_dir"' EXIT
export SETPOINT_REQUIRE_POSTGRES=1

echo "==> swift build --build-tests"
swift build --build-tests
# Two runs: the end-to-end tests start many servers and wait for them to exit, which holds
# cooperative threads (two on a two-core machine); the in-process suites (proxy, controllers,
# Kubernetes driver) would otherwise starve beside them.
echo "==> swift test (in-process suites)"
swift test --skip-build --skip E2ETests
echo "==> swift test (end-to-end, the real binary)"
swift test --skip-build --filter E2ETests

echo "==> API fuzzing from the OpenAPI document, zero 5xx allowed (hack/api-fuzz.sh)"
bash hack/api-fuzz.sh "${API_FUZZ_EXAMPLES:-25}"

echo "==> conformance with dstack 0.22.5 (hack/conformance/run.sh)"
SETPOINT_BUILD=debug bash hack/conformance/run.sh "${CONFORMANCE_COUNT:-3000}" "${CONFORMANCE_SEED:-1}"
