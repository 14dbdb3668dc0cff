#!/bin/bash
BIN=${BIN:?set BIN to the stack binary}; SECRET=HUNTER2canaryQ7Zx
name=$1; dir=${IMP:-${HOSTILE_DIR:-/tmp/stack-hostile}/imp}/$name; out=${HOSTILE_DIR:-/tmp/stack-hostile}/out/imp-$name
rm -rf $dir/project
start=$(date +%s.%N)
( cd $dir && RUST_BACKTRACE=1 timeout 60 /usr/bin/time -f 'RSS %M' -o $out.time $BIN import compose docker-compose.yml project >$out.stdout 2>$out.stderr ); rc=$?
end=$(date +%s.%N)
rss=$(grep -o 'RSS [0-9]*' $out.time | cut -d' ' -f2)
flags=""; grep -q panicked $out.stderr && flags="$flags PANIC"
grep -qa "$SECRET" $out.stdout $out.stderr && flags="$flags LEAK"
[ $rc -ne 0 ] && [ -n "$(ls -A $dir/project 2>/dev/null)" ] && flags="$flags WROTE"
printf '%-26s rc=%-3s rss=%7sK t=%5.1fs%s | %s\n' "$name" "$rc" "$rss" "$(echo "$end - $start" | bc)" "$flags" "$(grep -m1 -a '^error\|^warn' $out.stderr | cut -c1-140)"
