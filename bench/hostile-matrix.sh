#!/bin/bash
# Every hostile input of BENCHMARKS.md "Hostile inputs, every input attacked": generate the
# cases, run `stack build` (project cases) and `stack import compose` (import cases) on each
# with RUST_BACKTRACE=1 under a 60 s timeout and /usr/bin/time -f %M, and print one line per
# case: exit code, peak RSS, wall time, flags (PANIC, LEAK: the planted secret
# HUNTER2canaryQ7Zx in stdout or stderr, BUNDLE/WROTE: written on failure, NOLOC: exit 2
# without a `-->` location) and the first error line.
# Usage: sleep 7200 | BIN=target/debug/stack bash bench/hostile-matrix.sh   (HOSTILE_DIR: /tmp/stack-hostile)
# (the pipe holds stdin open and silent, as a CI runner may: a case that reads stdin hangs
# until its timeout instead of reading the terminal)
set -u
here=$(cd "$(dirname "$0")/hostile-matrix" && pwd)
export BIN=$(realpath "${BIN:?set BIN to the stack binary}")
export HOSTILE_DIR=${HOSTILE_DIR:-/tmp/stack-hostile}
mkdir -p "$HOSTILE_DIR"
for mk in mk mk2 mk3 mkimport mkimport2; do bash "$here/$mk.sh" >/dev/null || exit 1; done
for c in $(ls "$HOSTILE_DIR/cases"); do bash "$here/run.sh" "$c" build; done
for set in cases2 cases3; do
  for c in $(ls "$HOSTILE_DIR/$set"); do CASES="$HOSTILE_DIR/$set" bash "$here/run.sh" "$c" build; done
done
for set in imp imp2; do
  for c in $(ls "$HOSTILE_DIR/$set"); do IMP="$HOSTILE_DIR/$set" bash "$here/runimp.sh" "$c"; done
done
