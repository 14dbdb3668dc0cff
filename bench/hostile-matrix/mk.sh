#!/bin/bash
# Generate the cases under ${HOSTILE_DIR:-/tmp/stack-hostile}/cases.
set -e
C=${HOSTILE_DIR:-/tmp/stack-hostile}/cases
rm -rf $C; mkdir -p $C
. "$(dirname "$0")/lib.sh"
d=$(base ok)
# size
d=$(base huge100m); python3 -c "
import sys
with open('$d/stack.local.env','w') as f:
    for i in range(3_000_000): f.write('# padding line number %d xxxxxxxxxxxxxxx\n'%i)"
d=$(base longline); python3 -c "open('$d/stack.local.env','w').write('X='+'a'*3_000_000+'\n')"
d=$(base longkey); python3 -c "open('$d/stack.local.env','w').write('X'*3_000_000+'=1\n')"
d=$(base longline-secret); python3 -c "open('$d/environments/dev/secrets.env','a').write('BIG='+'a'*3_000_000+'HUNTER2canaryQ7Zx\n')"
d=$(base services5000); python3 -c "
n=5000
s='STACK_PROJECT=big\nSTACK_SERVICES='+','.join('s%d'%i for i in range(n))+'\n'
s+=''.join('SERVICE_S%d_IMAGE=stack-test/busybox:latest\n'%i for i in range(n))
open('$d/stack.env','w').write(s)"
d=$(base services9999-routes); python3 -c "
n=3000
s='STACK_PROJECT=big\nSTACK_SERVICES='+','.join('s%d'%i for i in range(n))+'\n'
s+=''.join('SERVICE_S%d_IMAGE=stack-test/busybox:latest\nSERVICE_S%d_PORT=80\nSERVICE_S%d_ROUTE=s%d.example.com\n'%(i,i,i,i) for i in range(n))
open('$d/stack.env','w').write(s)"
d=$(base services-list-only); python3 -c "
s='STACK_PROJECT=big\nSTACK_SERVICES='+','.join('s%d'%i for i in range(200000))+'\n'
open('$d/stack.env','w').write(s)"
# bytes
d=$(base nul); printf 'X=a\0b\n' >> $d/stack.env
d=$(base nul-key); printf 'X\0Y=1\n' >> $d/stack.env
d=$(base nul-secret); printf 'B=a\0HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
d=$(base invalid-utf8); printf 'X=a\xff\xfeb\n' >> $d/stack.env
d=$(base invalid-utf8-secret); printf 'B=HUNTER2canaryQ7Zx\xff\n' >> $d/environments/dev/secrets.env
d=$(base bom); { printf '\xef\xbb\xbf'; cat $d/stack.env; } > $d/x; mv $d/x $d/stack.env
d=$(base bom-secrets); { printf '\xef\xbb\xbf'; cat $d/environments/dev/secrets.env; } > $d/x; mv $d/x $d/environments/dev/secrets.env
d=$(base crlf); sed -i 's/$/\r/' $d/stack.env
d=$(base crlf-secrets); sed -i 's/$/\r/' $d/environments/dev/secrets.env
d=$(base lonecr); tr '\n' '\r' < $d/stack.env > $d/x; mv $d/x $d/stack.env
d=$(base lonecr-mid); printf 'X=a\rSTACK_PROJECT=evil\n' >> $d/stack.env
d=$(base tabs); printf 'X\t=\t1\n\tY=2\n' >> $d/stack.env
d=$(base tab-value); printf 'SERVICE_WEB_ENV_T=a\tb\n' >> $d/stack.env
# unicode
d=$(base lookalike-service); sed -i 's/STACK_SERVICES=web/STACK_SERVICES=w\xd0\xb5b/' $d/stack.env
d=$(base lookalike-key); printf 'SERVICE_W\xd0\x95B_PORT=81\n' >> $d/stack.env
d=$(base bidi-route); printf 'SERVICE_WEB_ROUTE=exa\xe2\x80\xaemple.com\n' >> $d/stack.env
d=$(base bidi-env); printf 'SERVICE_WEB_ENV_X=a\xe2\x80\xaeb\n' >> $d/stack.env
d=$(base bidi-project); sed -i 's/STACK_PROJECT=minimal/STACK_PROJECT=mini\xe2\x80\xaemal/' $d/stack.env
d=$(base zwsp-image); sed -i 's/busybox:latest/busy\xe2\x80\x8bbox:latest/' $d/stack.env
d=$(base fullwidth-domain); printf 'STACK_DOMAIN=\xef\xbd\x85xample.com\n' >> $d/stack.env
# special files
d=$(base link-urandom); ln -s /dev/urandom $d/stack.local.env
d=$(base link-zero-secrets); rm $d/environments/dev/secrets.env; ln -s /dev/zero $d/environments/dev/secrets.env
d=$(base fifo-secrets); rm $d/environments/dev/secrets.env; mkfifo $d/environments/dev/secrets.env
d=$(base link-loop); ln -s loop.env $d/loop.env; ln -s loop.env $d/stack.local.env
d=$(base link-dangling); ln -s /nonexistent $d/stack.local.env
d=$(base unreadable); printf 'X=1\n' > $d/stack.local.env; chmod 000 $d/stack.local.env
# env_file
attack envfile-shadow 'SERVICE_WEB_ENV_FILE=../../etc/shadow\n'
attack envfile-abs 'SERVICE_WEB_ENV_FILE=/etc/passwd\n'
d=$(base envfile-zero); ln -s /dev/zero $d/z.env; add envfile-zero 'SERVICE_WEB_ENV_FILE=z.env\n'
d=$(base envfile-fifo); mkfifo $d/f.env; add envfile-fifo 'SERVICE_WEB_ENV_FILE=f.env\n'
d=$(base envfile-dir); mkdir $d/d.env; add envfile-dir 'SERVICE_WEB_ENV_FILE=d.env\n'
attack envfile-missing 'SERVICE_WEB_ENV_FILE=missing.env\n'
d=$(base envfile-link-out); ln -s /etc/passwd $d/p.env; add envfile-link-out 'SERVICE_WEB_ENV_FILE=p.env\n'
d=$(base envfile-link-secrets); ln -s environments/dev/secrets.env $d/s.env; add envfile-link-secrets 'SERVICE_WEB_ENV_FILE=s.env\n'
attack envfile-secrets-direct 'SERVICE_WEB_ENV_FILE=environments/dev/secrets.env\n'
d=$(base envfile-badline-secret); printf 'OK=1\nthis HUNTER2canaryQ7Zx line\n' > $d/e.env; add envfile-badline-secret 'SERVICE_WEB_ENV_FILE=e.env\n'
d=$(base envfile-huge); python3 -c "open('$d/h.env','w').write(('A=1\n')*3_000_000)"; add envfile-huge 'SERVICE_WEB_ENV_FILE=h.env\n'
# bind / build
attack bind-shadow 'SERVICE_WEB_VOLUMES=../../etc/shadow:/x:ro\n'
attack bind-abs 'SERVICE_WEB_VOLUMES=/etc/shadow:/x:ro\n'
attack bind-root 'SERVICE_WEB_VOLUMES=/:/host\n'
attack bind-docker-sock 'SERVICE_WEB_VOLUMES=/var/run/docker.sock:/var/run/docker.sock\n'
d=$(base build-outside); sed -i '/IMAGE/d' $d/stack.env; add build-outside 'SERVICE_WEB_BUILD=../../\n'
d=$(base build-abs); sed -i '/IMAGE/d' $d/stack.env; add build-abs 'SERVICE_WEB_BUILD=/etc\n'
d=$(base build-dockerfile-out); sed -i '/IMAGE/d' $d/stack.env; mkdir $d/app; add build-dockerfile-out 'SERVICE_WEB_BUILD=app\nSERVICE_WEB_DOCKERFILE=../../../etc/shadow\n'
d=$(base build-dockerfile-zero); sed -i '/IMAGE/d' $d/stack.env; mkdir $d/app; ln -s /dev/zero $d/app/Dockerfile; add build-dockerfile-zero 'SERVICE_WEB_BUILD=app\n'
d=$(base build-dockerignore-zero); sed -i '/IMAGE/d' $d/stack.env; mkdir $d/app; echo 'FROM stack-test/busybox' > $d/app/Dockerfile; ln -s /dev/zero $d/app/.dockerignore; add build-dockerignore-zero 'SERVICE_WEB_BUILD=app\n'
# interpolation
attack interp-self 'A=${A}\nSERVICE_WEB_ENV_A=${A}\n'
d=$(base interp-nest-deep); python3 -c "open('$d/stack.env','a').write('A='+'\${X:-'*200000+'z'+'}'*200000+'\n')"
d=$(base interp-nest-deep-alt); python3 -c "open('$d/stack.env','a').write('A='+'\${X:+'*200000+'z'+'}'*200000+'\nX=1\n')"
d=$(base interp-nest-5000); python3 -c "open('$d/stack.env','a').write('A='+'\${X:-'*5000+'z'+'}'*5000+'\n')"
d=$(base interp-chain-long); python3 -c "
s=''.join('K%d=\${K%d}\n'%(i,i+1) for i in range(9000))+'K9000=end\nSERVICE_WEB_ENV_K=\${K0}\n'
open('$d/stack.env','a').write(s)"
attack interp-required 'SERVICE_WEB_ENV_R=${NOPE:?}\n'
attack interp-required-msg 'SERVICE_WEB_ENV_R=${NOPE:?set NOPE in secrets}\n'
attack interp-required-secretmsg 'SERVICE_WEB_ENV_R=${NOPE:?${APP_SECRET}}\n'
attack interp-unterminated 'A=${B\n'
attack interp-badname 'A=${1B}\nB=${}\n'
attack interp-secret-default 'SERVICE_WEB_PORT=${NOPE:-${APP_SECRET}}\n'
attack interp-procenv 'SERVICE_WEB_ENV_H=${HOME}\n'
# numbers
for p in 0 65536 -1 99999999999999999999 1e3 0x50 ' 80' '８０'; do n=port-$(echo "$p" | tr -c 'a-z0-9-' '_'); d=$(base $n); sed -i "s/SERVICE_WEB_PORT=8080/SERVICE_WEB_PORT=$p/" $d/stack.env; done
attack publish-overlap 'SERVICE_WEB_PUBLISH=8000-8100:8000-8100,8050:80\n'
attack publish-range-huge 'SERVICE_WEB_PUBLISH=1-65535:1-65535\n'
attack publish-range-rev 'SERVICE_WEB_PUBLISH=9000-8000:9000-8000\n'
attack publish-0 'SERVICE_WEB_PUBLISH=0:80\n'
attack publish-65536 'SERVICE_WEB_PUBLISH=65536:80\n'
for v in 18446744073709551615s 18446744073709551616 1e309s -5s 99999999999999999999999h 1e309 NaN inf 0s 1m-30s 9223372036854775807ns 5ms5; do n=dur-$(echo "$v" | tr -c 'a-z0-9-' '_'); attack $n "SERVICE_WEB_HEALTH_INTERVAL=$v\n"; done
for v in 18446744073709551616 -1 1e309 0 4294967296 NaN; do n=mem-$(echo "$v" | tr -c 'a-z0-9-' '_'); attack $n "SERVICE_WEB_MEMORY_MB=$v\n"; done
for v in 1e309 -1 NaN inf 0 99999999999; do n=cpus-$(echo "$v" | tr -c 'a-z0-9-' '_'); attack $n "SERVICE_WEB_CPUS=$v\n"; done
for v in 18446744073709551616 -1 0 1000000000; do n=replicas-$(echo "$v" | tr -c 'a-z0-9-' '_'); attack $n "SERVICE_WEB_REPLICAS=$v\n"; done
# names
d=$(base collide-dash); sed -i 's/STACK_SERVICES=web/STACK_SERVICES=my-app,my_app/' $d/stack.env; add collide-dash 'SERVICE_MY_APP_IMAGE=x\n'
d=$(base collide-case); sed -i 's/STACK_SERVICES=web/STACK_SERVICES=web,WEB/' $d/stack.env
d=$(base collide-dup); sed -i 's/STACK_SERVICES=web/STACK_SERVICES=web,web/' $d/stack.env
d=$(base collide-dot); sed -i 's/STACK_SERVICES=web/STACK_SERVICES=web,my.app,my-app/' $d/stack.env; add collide-dot 'SERVICE_MY_APP_IMAGE=x\n'
for r in proxy caddy nginx default stack backup postgres con . .. -web; do n=reserved-$(echo "$r" | tr -c 'a-z0-9-' '_'); d=$(base $n); sed -i "s/STACK_SERVICES=web/STACK_SERVICES=web,$r/" $d/stack.env; done
d=$(base empty-services); sed -i 's/STACK_SERVICES=web/STACK_SERVICES=/' $d/stack.env
d=$(base only-commas); sed -i 's/STACK_SERVICES=web/STACK_SERVICES=,,,/' $d/stack.env
d=$(base empty-file); : > $d/stack.env
attack dup-key 'SERVICE_WEB_PORT=81\n'
attack secret-in-route 'SERVICE_WEB_ROUTE=${APP_SECRET}.example.com\n'
attack secret-in-image 'SERVICE_WEB_IMAGE=${APP_SECRET}\n'
attack secret-bad-port 'SERVICE_WEB_PORT=${APP_SECRET}\n'
attack secret-in-name 'STACK_SERVICES=${APP_SECRET}\n'
d=$(base secret-in-key-typo); printf 'SERVICE_WEB_PROT=HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
d=$(base secret-bad-bool); printf 'SERVICE_WEB_READ_ONLY=HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
d=$(base secret-quote-unterminated); printf 'Q="HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
d=$(base secret-badkey); printf 'bad key=HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
d=$(base secret-noeq); printf 'HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
echo done
