#!/usr/bin/env bash
# Benchmark for issue 11: time to dump and to verify a 1 GB database with `stack backup`.
# Run from the repository root: `bash bench/backup.sh`.
#
# Starts a project with the POSTGRES and BACKUP presets on the local engine (image
# stack-test/postgres:15 from scripts/build-test-images.sh), fills the database with
# about 1 GB, then times the two commands below. DATA chooses the data:
#   pgbench  `pgbench -i -s SCALE` (pgbench ships with Debian's postgresql-15; scale 68 is
#            about 1 GB: 6.8 M rows in pgbench_accounts plus their primary key). Its
#            blank-padded rows compress about 50:1, so the dump is small.
#   random   ROWS rows of 96 random hex characters and a primary key (7 M rows: about
#            1 GB), which compress about 2:1, as real text and ids do more nearly.
#   1. stack backup run      pg_dump -Fc and the manifest (row counts of every table in the
#                            dump's own snapshot), written to a temp name and renamed
#   2. stack backup verify   the dump restored into a throwaway server in a one-off
#                            container of the same image (pg_restore -j 2), row counts
#                            compared with the manifest, container removed
# The work happens in the containers: the stack binary's build profile does not matter.
#
# Environment:
#   DATA      pgbench or random (default random)
#   SCALE     pgbench scale factor (default 68, about 1 GB)
#   ROWS      rows of the random table (default 7000000, about 1 GB)
#   OUT_DIR   where the markdown table goes (default bench/results)
#   CARGO_TARGET_DIR is honoured (default target/); STACK_BIN=path uses a binary built beforehand.
set -euo pipefail

cd "$(dirname "$0")/.."
DATA=${DATA:-random}
SCALE=${SCALE:-68}
ROWS=${ROWS:-7000000}
OUT_DIR=${OUT_DIR:-bench/results}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
IMAGE=stack-test/postgres:15

docker image inspect "$IMAGE" >/dev/null 2>&1 || {
    echo "bench/backup.sh: $IMAGE is missing: run scripts/build-test-images.sh" >&2
    exit 2
}
if [ -n "${STACK_BIN:-}" ]; then
    STACK=$STACK_BIN # a binary built beforehand
else
    cargo build --quiet
    STACK="$(cd "$TARGET_DIR/debug" && pwd)/stack"
fi

dir="$(mktemp -d)"
project="bench-backup-$$"
cleanup() {
    "$STACK" -C "$dir" down --volumes >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/stack.env" <<EOF
STACK_PROJECT=$project
STACK_TLS=off
STACK_PROXY=none
POSTGRES_ENABLED=true
SERVICE_POSTGRES_IMAGE=$IMAGE
POSTGRES_DB=bench
POSTGRES_USER=bench
BACKUP_ENABLED=true
BACKUP_SCHEDULE=0 0 31 2 *
BACKUP_VERIFY_SCHEDULE=0 0 31 2 *
EOF
"$STACK" -C "$dir" start >/dev/null
container="$project-postgres-1"
psql() {
    docker exec "$container" psql -X -q -At -h 127.0.0.1 -U bench -d bench "$@"
}
for _ in $(seq 1 240); do
    if psql -c 'SELECT 1' >/dev/null 2>&1; then break; fi
    sleep 0.25
done

began=$SECONDS
if [ "$DATA" = pgbench ]; then
    echo "bench/backup.sh: pgbench -i -s $SCALE" >&2
    docker exec "$container" pgbench -i -q -s "$SCALE" -h 127.0.0.1 -U bench bench >/dev/null 2>&1
    table=pgbench_accounts
    what="pgbench -s $SCALE"
else
    echo "bench/backup.sh: $ROWS random rows" >&2
    psql -c "CREATE TABLE items AS SELECT g AS id, md5(random()::text) || md5(random()::text) || md5(random()::text) AS payload FROM generate_series(1, $ROWS) g" >/dev/null
    psql -c "ALTER TABLE items ADD PRIMARY KEY (id)" >/dev/null
    table=items
    what="$ROWS random rows"
fi
fill=$((SECONDS - began))
db_bytes="$(psql -c "SELECT pg_database_size('bench')")"
rows="$(psql -c "SELECT count(*) FROM $table")"

seconds() {
    local start end
    start="$(date +%s.%N)"
    "$@" >/dev/null 2>"$dir/err" || { cat "$dir/err" >&2; exit 1; }
    end="$(date +%s.%N)"
    echo "$end - $start" | bc
}
echo "bench/backup.sh: stack backup run" >&2
run_s="$(seconds "$STACK" -C "$dir" backup run)"
dump="$(ls "$dir/backups" | grep -E '^dump-.*[.]dump$' | tail -n 1)"
dump_bytes="$(stat -c %s "$dir/backups/$dump")"
echo "bench/backup.sh: stack backup verify" >&2
verify_s="$(seconds "$STACK" -C "$dir" backup verify "$dump")"

mb() { echo "scale=0; $1 / 1048576" | bc; }
mkdir -p "$OUT_DIR"
out="$OUT_DIR/backup-$DATA.md"
{
    echo "| database | rows | dump (custom format) | \`stack backup run\` | \`stack backup verify\` |"
    echo "|---|---|---|---|---|"
    printf '| %s MiB (%s, filled in %s s) | %s | %s MiB | %.1f s | %.1f s |\n' \
        "$(mb "$db_bytes")" "$what" "$fill" "$rows" "$(mb "$dump_bytes")" "$run_s" "$verify_s"
} | tee "$out"
echo "bench/backup.sh: written to $out ($(nproc) cores, $(date -u +%Y-%m-%d))" >&2
