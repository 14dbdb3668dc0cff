#!/bin/bash
# The classes mk.sh and mk2.sh lack (session 6): huge line and key counts, huge numbers in
# every size, count and duration key, unicode names, NUL bytes in every kind of file, the
# project's own files as FIFOs and device links, and STACK_SECRETS_COMMAND that floods,
# never ends or fails. Cases under ${HOSTILE_DIR:-/tmp/stack-hostile}/cases3.
set -e
C=${HOSTILE_DIR:-/tmp/stack-hostile}/cases3; rm -rf $C; mkdir -p $C
. "$(dirname "$0")/lib.sh"
py() { python3 -c "$1"; }
# line and key counts, each file under the 4 MiB cap
d=$(base lines-empty-4m); py "open('$d/stack.env','a').write('\n'*4_000_000)"
d=$(base lines-comments-4m); py "open('$d/stack.env','a').write('#\n'*2_000_000)"
d=$(base keys-100k); py "open('$d/stack.env','a').write(''.join('K%d=1\n'%i for i in range(100_000)))"
d=$(base keys-9999-env); py "open('$d/stack.env','a').write(''.join('SERVICE_WEB_ENV_K%d=1\n'%i for i in range(9_990)))"
d=$(base keys-9999-refs); py "open('$d/stack.env','a').write('A=x\n'+''.join('SERVICE_WEB_ENV_K%d=\${A}\${A}\${A}\${A}\${A}\n'%i for i in range(9_990)))"
d=$(base every-layer-4m); for f in stack.local.env environments/dev/stack.env; do py "open('$d/$f','w').write('#'*4_000_000+'\n')"; done
d=$(base list-volumes-200k); py "open('$d/stack.env','a').write('SERVICE_WEB_VOLUMES='+','.join('v%d:/d%d'%(i,i) for i in range(200_000))+'\n')"
d=$(base list-labels-200k); py "open('$d/stack.env','a').write('SERVICE_WEB_LABELS='+','.join('l%d=x'%i for i in range(200_000))+'\n')"
d=$(base list-publish-60k); py "open('$d/stack.env','a').write('SERVICE_WEB_PUBLISH='+','.join('%d:80'%(1024+i) for i in range(60_000))+'\n')"
d=$(base list-depends-200k); py "open('$d/stack.env','a').write('SERVICE_WEB_DEPENDS_ON='+','.join('web' for i in range(200_000))+'\n')"
d=$(base list-routes-100k); py "open('$d/stack.env','a').write('SERVICE_WEB_ROUTE='+','.join('h%d.example.com'%i for i in range(100_000))+'\n')"
d=$(base list-extra-hosts-100k); py "open('$d/stack.env','a').write('SERVICE_WEB_EXTRA_HOSTS='+','.join('h%d:10.0.0.1'%i for i in range(100_000))+'\n')"
# huge numbers in every size, count and duration key
for k in MEMORY_MB MEMORY_RESERVATION_MB MEMORY_SWAP_MB SHM_MB PIDS_LIMIT CPU_SHARES HEALTH_RETRIES OOM_SCORE_ADJ MEMORY_SWAPPINESS CPUSET; do
  for v in 18446744073709551616 -9223372036854775809 1e309 99999999999999999999999999999999999999 0x7fffffff; do
    attack num-$k-$(echo "$v" | tr -c 'a-z0-9-' '_') "SERVICE_WEB_$k=$v\n"; done; done
for k in HEALTH_START_PERIOD RELEASE_TIMEOUT TIMEOUT; do
  for v in 18446744073709551616s 99999999999999999999999h 9223372036854775807ns 106751991167301d; do
    attack dur-$k-$(echo "$v" | tr -c 'a-z0-9-' '_') "SERVICE_WEB_$k=$v\n"; done; done
for k in STACK_HEALTH_TIMEOUT STACK_CERTBOT_INTERVAL STACK_PREVIEW_TTL STACK_DRAIN STACK_KEEP_RELEASES STACK_LOG_MAX_FILES STACK_LOG_MAX_SIZE STACK_PREVIEW_MAX STACK_PREVIEW_MEMORY_MB STACK_PREVIEW_CPUS STACK_HTTP_PORT STACK_HTTPS_PORT; do
  for v in 18446744073709551616 99999999999999999999999h 1e309 -1; do
    attack glob-$k-$(echo "$v" | tr -c 'a-z0-9-' '_') "$k=$v\n"; done; done
attack replicas-2pow32 'SERVICE_WEB_REPLICAS=4294967296\n'
attack replicas-100k 'SERVICE_WEB_REPLICAS=100000\n'
attack concurrency-huge 'SERVICE_WEB_SCHEDULE=@daily\nSERVICE_WEB_CONCURRENCY=18446744073709551616\n'
attack ulimit-huge-range 'SERVICE_WEB_ULIMITS=nofile=99999999999999999999:99999999999999999999\n'
attack tmpfs-size-huge 'SERVICE_WEB_TMPFS=/t:size=99999999999999999999999g\n'
attack sysctl-huge 'SERVICE_WEB_SYSCTLS=net.core.somaxconn=99999999999999999999999\n'
attack schedule-year 'SERVICE_WEB_SCHEDULE=0 0 31 2 *\n'
# unicode in names
d=$(base uni-service-emoji); sed -i 's/STACK_SERVICES=web/STACK_SERVICES=web,\xf0\x9f\x90\xb3/' $d/stack.env
d=$(base uni-service-combining); sed -i 's/STACK_SERVICES=web/STACK_SERVICES=web,we\xcc\x81b/' $d/stack.env
d=$(base uni-service-rtl); sed -i 's/STACK_SERVICES=web/STACK_SERVICES=web,\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d/' $d/stack.env
d=$(base uni-project-emoji); sed -i 's/STACK_PROJECT=minimal/STACK_PROJECT=\xf0\x9f\x90\xb3/' $d/stack.env
attack uni-env-key 'SERVICE_WEB_ENV_\xc3\x89T\xc3\x89=1\n'
attack uni-key-fullwidth '\xef\xbc\xb3TACK_DOMAIN=example.com\n'
attack uni-route-idn 'SERVICE_WEB_ROUTE=b\xc3\xbccher.example\n'
attack uni-volume-name 'SERVICE_WEB_VOLUMES=d\xc3\xa4ten:/data\n'
attack uni-network 'SERVICE_WEB_NETWORKS=n\xc3\xa9t\n'
attack uni-user 'SERVICE_WEB_USER=\xc3\xbcser\n'
attack uni-secret-name 'STACK_SECRETS=S\xc3\x89CRET\n'
# NUL bytes
d=$(base nul-local); printf 'X=a\0b\n' > $d/stack.local.env
d=$(base nul-overlay); printf 'X=a\0b\n' > $d/environments/dev/stack.env
d=$(base nul-envfile); printf 'A=1\0B=HUNTER2canaryQ7Zx\n' > $d/e.env; add nul-envfile 'SERVICE_WEB_ENV_FILE=e.env\n'
d=$(base nul-only); printf '\0\0\0\0' > $d/stack.env
d=$(base nul-in-list); printf 'SERVICE_WEB_VOLUMES=a:/a,\0:/b\n' >> $d/stack.env
# the project's own files as special files
d=$(base fifo-stack); rm $d/stack.env; mkfifo $d/stack.env
d=$(base zero-stack); rm $d/stack.env; ln -s /dev/zero $d/stack.env
d=$(base urandom-stack); rm $d/stack.env; ln -s /dev/urandom $d/stack.env
d=$(base stdin-stack); rm $d/stack.env; ln -s /proc/self/fd/0 $d/stack.env
d=$(base fifo-local); mkfifo $d/stack.local.env
d=$(base fifo-overlay); mkfifo $d/environments/dev/stack.env
d=$(base zero-overlay); ln -s /dev/zero $d/environments/dev/stack.env
d=$(base zero-server); ln -s /dev/zero $d/environments/dev/server.env
d=$(base fifo-server); mkfifo $d/environments/dev/server.env
d=$(base dir-local); mkdir $d/stack.local.env
d=$(base proc-environ-local); ln -s /proc/self/environ $d/stack.local.env
attack envfile-stdin 'SERVICE_WEB_ENV_FILE=../../../../../../../proc/self/fd/0\n'
d=$(base envfile-dev-stdin-link); ln -s /dev/stdin $d/s.env; add envfile-dev-stdin-link 'SERVICE_WEB_ENV_FILE=s.env\n'
d=$(base secretfile-zero); ln -s /dev/zero $d/z; add secretfile-zero 'SERVICE_WEB_SECRET_FILES=z\n'
d=$(base secretfile-fifo); mkfifo $d/f; add secretfile-fifo 'SERVICE_WEB_SECRET_FILES=f\n'
# STACK_SECRETS_COMMAND from the committed project file
attack cmd-flood 'STACK_SECRETS_COMMAND=yes A=1\n'
attack cmd-flood-noline 'STACK_SECRETS_COMMAND=cat /dev/zero\n'
# (the secret is split by '' in the command, so only the command's output holds it whole)
attack cmd-secret-badline "STACK_SECRETS_COMMAND=echo HUNTER2canary''Q7Zx\n"
attack cmd-secret-stderr "STACK_SECRETS_COMMAND=echo HUNTER2canary''Q7Zx >&2; exit 3\n"
attack cmd-secret-nul "STACK_SECRETS_COMMAND=printf 'A=HUNTER2canary''Q7Zx\\\\000\\\\n'\n"
echo done
