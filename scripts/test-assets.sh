#!/usr/bin/env bash
# Installs the JavaScript the browser tests inject: axe-core (the accessibility engine), from the
# npm registry with npm, into .cache/npm (not committed). Idempotent; without npm it says so and
# the browser tests still run their own contrast/label/name checks (in CI they require axe).
set -euo pipefail
cd "$(dirname "$0")/.."
AXE_VERSION=4.14.1
target=.cache/npm/node_modules/axe-core/axe.min.js
if [ -f "$target" ] && grep -q "\"version\": \"$AXE_VERSION\"" .cache/npm/node_modules/axe-core/package.json; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "test-assets: npm not found; apt-get install npm to run axe-core in the browser tests" >&2
  exit 0
fi
mkdir -p .cache/npm
npm install --silent --no-audit --no-fund --prefix .cache/npm "axe-core@$AXE_VERSION" >/dev/null
echo "test-assets: axe-core $AXE_VERSION in $target" >&2
