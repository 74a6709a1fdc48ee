#!/usr/bin/env bash
# The browser test: posthog-js from npm in Debian's Chromium, driven by
# playwright-core (which cannot download its own browser here). Installs
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
# The test resolves its modules next to itself: run a copy from there.
cp tests/browser/test_posthog_js.mjs "$mods/"
CHROMIUM="$(command -v chromium)" node "$mods/test_posthog_js.mjs" "$target/debug/footprint"
