#!/bin/bash
# run.sh NAME CMD... : run stack in ${HOSTILE_DIR:-/tmp/stack-hostile}/cases/NAME (project dir), report
# exit code, max RSS, time, panic, secret leak, bundle written.
BIN=${BIN:?set BIN to the stack binary}
SECRET=HUNTER2canaryQ7Zx
name=$1; shift
dir=${CASES:-${HOSTILE_DIR:-/tmp/stack-hostile}/cases}/$name
out=${HOSTILE_DIR:-/tmp/stack-hostile}/out/$name; mkdir -p ${HOSTILE_DIR:-/tmp/stack-hostile}/out
start=$(date +%s.%N)
( cd $dir && RUST_BACKTRACE=1 timeout 60 /usr/bin/time -f 'RSS %M' -o $out.time $BIN "$@" >$out.stdout 2>$out.stderr ); rc=$?
end=$(date +%s.%N)
rss=$(grep -o 'RSS [0-9]*' $out.time | cut -d' ' -f2)
flags=""
grep -q panicked $out.stderr && flags="$flags PANIC"
grep -qa "$SECRET" $out.stdout $out.stderr && flags="$flags LEAK"
[ -e $dir/.stack ] && [ $rc -ne 0 ] && flags="$flags BUNDLE"
grep -q -- '-->' $out.stderr || { [ $rc -eq 2 ] && flags="$flags NOLOC"; }
printf '%-34s rc=%-3s rss=%6sK t=%5.1fs%s | %s\n' "$name" "$rc" "$rss" "$(echo "$end - $start" | bc)" "$flags" "$(grep -m1 -a '^error' $out.stderr | cut -c1-150)"
