#!/usr/bin/env bash
# Profile store figures (issue 15): import of a CRM CSV export, engine open
# with the profiles, and profile queries over them. Not run by CI.
#   bash benches/profiles/run.sh [USERS]   (default 1,000,000)
set -euo pipefail
cd "$(dirname "$0")/../.."
users="${1:-1000000}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p footprint-server -q
fp="$target/release/footprint"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$fp" gen --users "$users" --events "$users" --out "$work/ev.ndjson" >/dev/null
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "CSV: $(du -h "$work/ev.ndjson.profiles.csv" | cut -f1)"
/usr/bin/time -f "import: %e s wall, %M kB peak RSS" \
  "$fp" profiles import --data "$work/db" "$work/ev.ndjson.profiles.csv"
echo "base file: $(du -h "$work"/db/profiles/*.pcol | cut -f1)"
/usr/bin/time -f "open + stats: %e s wall, %M kB peak RSS" "$fp" stats --data "$work/db" >/dev/null
q() {
  echo "$2" >"$work/q.json"
  for _ in 1 2 3; do
    "$fp" query --timing --data "$work/db" "$work/q.json" 2>&1 >/dev/null | sed "s/^/$1: /"
  done
}
q "contracts ending in 30 days, by CSM" \
  '{"kind":"users","profile":{"user_prop":"contract_end","op":"within_next","value":{"value":30,"unit":"day"}},"breakdown":[{"user_prop":"csm_owner"}]}'
q "users by plan" '{"kind":"users","breakdown":[{"user_prop":"plan"}]}'
q "enterprise users with 100+ seats" \
  '{"kind":"users","profile":{"and":[{"user_prop":"plan","op":"eq","value":"enterprise"},{"user_prop":"seats","op":"gte","value":100}]}}'
