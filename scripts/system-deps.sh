#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real: PostgreSQL, Dovecot (IMAP), Chromium.
# Idempotent: does nothing when they are present. Needs root (or sudo) for apt-get.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)  # axe-core for the accessibility checks
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "system-deps: need root to install ${missing[*]} (tests needing them will skip outside CI)" >&2
    exit 0
  fi
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the services it installs where it can; the tests run their own private instances.
$SUDO service postgresql stop >/dev/null 2>&1 || true
$SUDO service dovecot stop >/dev/null 2>&1 || true
