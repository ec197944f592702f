#!/usr/bin/env bash
# Regenerates the README's screenshots (docs/screenshots/*.png: channel page, inquiry, reply,
# channel on a phone, a Slack card drawn from our real Block Kit output) from the browser
# tests, so they never go stale.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
./scripts/test-assets.sh
CLAIMDESK_SCREENSHOTS=docs/screenshots "$BIN/pytest" -q -p no:cacheprovider \
  tests/test_web_channel_browser.py tests/test_slack_card_preview.py
ls -1 docs/screenshots/*.png
