#!/usr/bin/env bash
# Set-up of the browser check (tests/render): make sure Debian's chromium and chromium-driver are
# installed. Installs them with apt-get when they are missing and that is possible (as root, or
# with sudo that needs no password); otherwise prints exactly what to run and exits with status 1.
# Used by `make render` (and so `make test`) and by .ci/run.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromedriver)
echo "browser check: ${missing[*]} not found; it needs Debian's chromium and chromium-driver" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here: install Chromium and a matching chromedriver with this system's package" >&2
  echo "manager, so that the commands 'chromium' and 'chromedriver' are on PATH, then run 'make render'" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo_cmd="sudo"
else
  echo "installing them needs root; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y chromium chromium-driver" >&2
  echo "then run 'make render' again" >&2
  exit 1
fi
echo "installing chromium and chromium-driver with ${sudo_cmd:+sudo }apt-get" >&2
$sudo_cmd apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q chromium chromium-driver
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || {
  echo "apt-get finished but 'chromium' or 'chromedriver' is still not on PATH" >&2
  exit 1
}
