#!/usr/bin/env bash
# Installs what tests/test_plots_render.py needs to draw `dvc plots show` pages offline, and what
# tests/test_report.py needs to draw the PR report's Mermaid charts:
#   - Debian's chromium (headless), when apt-get is usable (root, or sudo without a password);
#   - vega, vega-lite and vega-embed from the npm registry into .ci/node/ (git-ignored), because the page
#     DVC writes loads them from a CDN that CI may not reach;
#   - mermaid, into the same folder: a 10.x release, older than GitHub's, so that the report's charts use
#     only syntax that every recent GitHub renders.
# Safe to run by hand and to rerun. Nothing here is fatal: whatever cannot be installed makes the render
# test skip with a reason, and the rest of the suite still runs.
set -uo pipefail
cd "$(dirname "$0")/.."

# The versions are pinned so that a rendering change upstream cannot change the test's outcome.
NODE_PACKAGES=(vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0 mermaid@10.9.4)
NODE_PREFIX=.ci/node

have_browser() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }

if have_browser; then
    echo "install_browser: chromium already installed: $(command -v chromium || command -v chromium-browser)"
elif command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        sudo=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo -n"
    else
        sudo="none"
    fi
    if [ "$sudo" = "none" ]; then
        echo "install_browser: warning: not root and no passwordless sudo; skipping chromium (the plot render test will skip)" >&2
    elif $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; then
        echo "install_browser: installed $(chromium --version 2>/dev/null)"
    else
        echo "install_browser: warning: apt-get could not install chromium; the plot render test will skip" >&2
    fi
else
    echo "install_browser: warning: no apt-get; install chromium yourself or the plot render test will skip" >&2
fi

if command -v npm >/dev/null 2>&1; then
    if npm install --silent --no-audit --no-fund --save-exact --prefix "$NODE_PREFIX" "${NODE_PACKAGES[@]}"; then
        echo "install_browser: vega and mermaid libraries in $NODE_PREFIX/node_modules"
    else
        echo "install_browser: warning: npm install failed; the plot and report chart render tests will skip" >&2
    fi
else
    echo "install_browser: warning: no npm; the plot render test will skip" >&2
fi
exit 0
