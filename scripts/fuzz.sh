#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (seconds per target, default 60).
set -euo pipefail
cd "$(dirname "$0")/../shared/fuzz"
secs=${1:-60}
for target in $(cargo +nightly fuzz list); do
  printf '[fuzz] %s for %ss\n' "$target" "$secs"
  cargo +nightly fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | tail -n 3
done
