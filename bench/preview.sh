#!/usr/bin/env bash
# Benchmark for issue 23: how long `stack preview up` takes on a VM-like machine, and
# whether staging's traffic sees a failure while previews are added and removed.
# Run from the repository root: `bash bench/preview.sh`.
#
# Runs tests/preview.rs (`previews_come_and_go_beside_a_running_staging`: a vm-docker
# machine from scripts/build-test-images.sh, staging deployed, a request loop of about
# 50 requests a second to staging through its proxy) and prints the lines it reports:
#   preview up pr-1 (new)                 a first deploy: lock, upload, 2 containers, route, reload
#   preview up feature-two (two)          the same with the seed command run once
#   preview up … (update in place)        a redeploy that replaces `web` (rolling) and reloads
#   staging under previews                requests sent to staging, and how many failed
# then `previews_on_nginx_beside_a_running_staging` (the same on an nginx staging: new,
# update in place, down, each with `nginx -s reload`) and
# `a_preview_starts_from_the_newest_backup_and_supervise_expires_it` (a preview seeded
# from staging's newest verified dump: Postgres restores it on its first start).
# CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo nextest run --test preview previews_come_and_go previews_on_nginx a_preview_starts_from_the_newest_backup --no-capture 2>&1 |
    grep -E '^(preview (up|down)|(nginx )?staging under previews)'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
