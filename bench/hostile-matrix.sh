#!/bin/bash
# Every hostile input of BENCHMARKS.md "Hostile inputs, every input attacked": generate the
# cases, run `stack build` (project cases) and `stack import compose` (import cases) on each
# with RUST_BACKTRACE=1 under a 60 s timeout and /usr/bin/time -f %M, and print one line per
# case: exit code, peak RSS, wall time, flags (PANIC, LEAK: the planted secret
# HUNTER2canaryQ7Zx in stdout or stderr, BUNDLE/WROTE: written on failure, NOLOC: exit 2
# without a `-->` location) and the first error line.
# Usage: BIN=target/debug/stack bash bench/hostile-matrix.sh   (HOSTILE_DIR: /tmp/stack-hostile)
set -u
here=$(cd "$(dirname "$0")/hostile-matrix" && pwd)
export BIN=$(realpath "${BIN:?set BIN to the stack binary}")
export HOSTILE_DIR=${HOSTILE_DIR:-/tmp/stack-hostile}
mkdir -p "$HOSTILE_DIR"
bash "$here/mk.sh" >/dev/null && bash "$here/mk2.sh" >/dev/null && bash "$here/mkimport.sh" >/dev/null
for c in $(ls "$HOSTILE_DIR/cases"); do bash "$here/run.sh" "$c" build; done
for c in $(ls "$HOSTILE_DIR/cases2"); do CASES="$HOSTILE_DIR/cases2" bash "$here/run.sh" "$c" build; done
for c in $(ls "$HOSTILE_DIR/imp"); do bash "$here/runimp.sh" "$c"; done
