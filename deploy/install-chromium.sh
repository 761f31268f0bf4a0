#!/bin/sh
# Install Chromium from Debian's "chromium" package when it is missing, for
# the test that loads the HTML report of `llmobs report --html` in headless
# Chromium (tests/cli/test_html.py).
#
# Without apt-get, or without root, the script installs nothing and exits 0,
# and that test is skipped with the reason. A failed apt-get run also exits 0,
# so it does not stop `make tools`.
set -eu

PACKAGE=chromium

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: apt-get not found; install chromium yourself," \
        "or the test that needs it is skipped" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-chromium: not root, so Debian's $PACKAGE package is not" \
        "installed; run 'sudo apt-get install --no-install-recommends $PACKAGE'," \
        "or the test that needs it is skipped" >&2
    exit 0
fi

echo "install-chromium: installing Debian's $PACKAGE package" >&2
if ! { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$PACKAGE" >/dev/null; }; then
    echo "install-chromium: failed to install $PACKAGE; the test that needs it" \
        "is skipped" >&2
    exit 0
fi
echo "install-chromium: installed $(chromium --version 2>/dev/null || echo "$PACKAGE")" >&2
