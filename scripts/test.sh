#!/usr/bin/env bash
# The project's single test command: bash scripts/test.sh [pytest args...]
#
# On a fresh machine it creates .venv, installs torch (pinned, CPU build first so
# pip never pulls the CUDA wheels), installs atdata with the dev extras, makes sure
# the Redis and PostgreSQL server binaries exist (apt-get when run as root), installs
# the local PDS if this checkout has atdata.stack.pds, then runs pytest. The test
# suite starts its own servers on free loopback ports; nothing here starts a service.
# Idempotent: when everything is installed it only checks and goes straight to pytest.
#
# Chromium (for the AppView page tests) is installed the same way.
# Knobs: PYTHON (interpreter for a new venv, default python3), TORCH_VERSION,
#        ATDATA_FORCE_INSTALL=1 (reinstall the package even if nothing changed),
#        ATDATA_SKIP_CHECKS=1 (skip ruff and pyright, e.g. to rerun one test quickly).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

say() { echo "test.sh: $*" >&2; }
pip_install() { "$PY" -m pip install --disable-pip-version-check --progress-bar off -q "$@"; }

# 1. The virtual environment.
if [ ! -x "$PY" ]; then
  say "creating $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi

# 2. torch first and pinned: an unpinned resolve would fetch gigabytes of CUDA wheels.
if ! "$PY" - "$TORCH_VERSION" <<'EOF' 2>/dev/null; then
import importlib.metadata as md, sys
sys.exit(md.version("torch").split("+")[0] != sys.argv[1])
EOF
  say "installing torch==$TORCH_VERSION"
  pip_install "torch==$TORCH_VERSION"
fi

# 3. atdata itself, editable, with the dev extras; skipped while pyproject.toml is unchanged.
STAMP="$VENV/.atdata-dev-installed"
WANT=$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' pyproject.toml)
if [ "${ATDATA_FORCE_INSTALL:-0}" = 1 ] || [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ] \
   || ! "$PY" - "$ROOT/src" <<'EOF' 2>/dev/null; then
import importlib.util, sys
spec = importlib.util.find_spec("atdata")
where = [spec.origin or "", *(spec.submodule_search_locations or [])] if spec else []
sys.exit(not any(p.startswith(sys.argv[1]) for p in where))
EOF
  say "installing atdata[dev] (editable)"
  pip_install -e "$ROOT[dev]"
  echo "$WANT" > "$STAMP"
fi

# 4. Server binaries the suite starts (found the same way the launchers find them).
missing=()
# The Redis and PostgreSQL launchers are test code (tests/servers), not part of the package.
PYTHONPATH=tests "$PY" -c 'from servers.redis import find_redis_server; find_redis_server()' \
  2>/dev/null || missing+=(redis-server)
PYTHONPATH=tests "$PY" -c 'from servers.postgres import find_pg_bindir; find_pg_bindir()' \
  2>/dev/null || missing+=(postgresql)
# The AppView page tests drive Debian's Chromium through Playwright (never `playwright install`).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} with apt-get"
    # A policy-rc.d that says "no" keeps apt from starting the default services
    # (Redis on 6379, PostgreSQL on 5432): the tests start their own servers.
    POLICY=/usr/sbin/policy-rc.d
    CREATED_POLICY=0
    if [ ! -e "$POLICY" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$POLICY" && chmod 755 "$POLICY" && CREATED_POLICY=1
    fi
    rc=0
    DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
    if [ "$rc" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" </dev/null || rc=$?
    fi
    if [ "$CREATED_POLICY" = 1 ]; then rm -f "$POLICY"; fi
    [ "$rc" = 0 ] || { say "apt-get failed (exit $rc)"; exit "$rc"; }
  else
    say "missing server binaries: ${missing[*]}"
    say "install them (Debian/Ubuntu: sudo apt-get install -y redis-server postgresql chromium;"
    say "macOS: brew install redis postgresql) and run this script again"
    exit 1
  fi
fi

# 5. The local PDS (only once this checkout has the module; its install is idempotent).
if "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("atdata.stack.pds") is None)' 2>/dev/null; then
  "$PY" -m atdata.stack.pds install
fi

# 6. Lint, format and types (pinned ruff and pyright from the dev extras), then the tests.
if [ "${ATDATA_SKIP_CHECKS:-0}" != 1 ]; then
  say "ruff check, ruff format --check, pyright"
  "$VENV/bin/ruff" check src tests benchmarks scripts examples
  "$VENV/bin/ruff" format --check src tests benchmarks scripts examples
  "$PY" scripts/typecheck.py
fi

# 7. The tests.
exec "$PY" -m pytest "$@"
