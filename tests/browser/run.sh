#!/usr/bin/env bash
# The browser tests: posthog-js from npm, and the web console, in Debian's
# Chromium, driven by playwright-core (which cannot download its own
# browser here). Installs
# what is missing: `chromium` with apt (needs root, as on CI), the npm
# packages (pinned) into the target directory. A missing part is a
# failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
if ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
command -v node >/dev/null || { echo "node is required for the browser test" >&2; exit 1; }
mods="$target/browser-node"
mkdir -p "$mods"
if [ ! -d "$mods/node_modules/posthog-js" ] || [ ! -d "$mods/node_modules/playwright-core" ]; then
  (cd "$mods" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
    posthog-js@1.449.2 playwright-core@1.65.1)
fi
cargo build -q --profile test -p footprint-server --bin footprint
# Each test resolves its modules next to itself: run a copy from there.
# Both run even when the first fails.
cp tests/browser/test_posthog_js.mjs tests/browser/test_console.mjs "$mods/"
status=0
CHROMIUM="$(command -v chromium)" node "$mods/test_posthog_js.mjs" "$target/debug/footprint" || status=1
# The console test takes screenshots: into the target directory, or with
# FOOTPRINT_SCREENSHOTS=docs into the README's docs/ (to refresh them).
shots="${FOOTPRINT_SCREENSHOTS:-$target/screenshots}"
mkdir -p "$shots"
CHROMIUM="$(command -v chromium)" node "$mods/test_console.mjs" "$target/debug/footprint" "$shots" || status=1
exit $status
