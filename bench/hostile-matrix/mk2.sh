#!/bin/bash
set -e
C=${HOSTILE_DIR:-/tmp/stack-hostile}/cases2; rm -rf $C; mkdir -p $C
BASE_EXTRA='SERVICE_WEB_HEALTH=/\n'
. "$(dirname "$0")/lib.sh"
for k in HEALTH_INTERVAL HEALTH_TIMEOUT STOP_GRACE DRAIN; do
for v in 18446744073709551615s 18446744073709551616 1e309s -5s 99999999999999999999999h 1e309 NaN inf 0s 1m-30s 9223372036854775807ns 5ms5 106751991167300d 292y 1.5s; do n=$k-$(echo "$v" | tr -c 'a-z0-9-' '_'); attack $n "SERVICE_WEB_$k=$v\n"; done; done
for v in 18446744073709551616 -1 1e309 99999999999999999999g 1E 9223372036854775807b 8e; do n=shm-$(echo "$v" | tr -c 'a-z0-9-' '_'); attack $n "SERVICE_WEB_SHM_SIZE=$v\n"; done
for v in 'nofile=18446744073709551616' 'nofile=-2' 'nofile=1:0' 'x=1'; do n=ulimit-$(echo "$v" | tr -c 'a-z0-9-' '_'); attack $n "SERVICE_WEB_ULIMITS=$v\n"; done
d=$(base nul-env); printf 'SERVICE_WEB_ENV_X=a\0b\n' >> $d/stack.env
d=$(base nul-command); printf 'SERVICE_WEB_COMMAND=httpd\0-f\n' >> $d/stack.env
d=$(base nul-quoted); printf 'SERVICE_WEB_ENV_X="a\0b"\n' >> $d/stack.env
d=$(base esc-env); printf 'SERVICE_WEB_ENV_X=a\033[2Jb\n' >> $d/stack.env
d=$(base bidi-command); printf 'SERVICE_WEB_COMMAND=httpd -f \xe2\x80\xae-p 80\n' >> $d/stack.env
attack envfile-environ 'SERVICE_WEB_ENV_FILE=../../../../../../../proc/self/environ\n'
attack envfile-proc-status 'SERVICE_WEB_ENV_FILE=../../../../../../../proc/self/status\n'
attack envfile-passwd-rel 'SERVICE_WEB_ENV_FILE=../../../../../../../etc/os-release\n'
d=$(base envfile-link-osrel); ln -s /etc/os-release $d/o.env; add envfile-link-osrel 'SERVICE_WEB_ENV_FILE=o.env\n'
d=$(base dockerfile-outside); sed -i '/IMAGE/d' $d/stack.env; mkdir $d/app; add dockerfile-outside 'SERVICE_WEB_BUILD=app\nSERVICE_WEB_DOCKERFILE=../../../../../../etc/os-release\n'
d=$(base dockerfile-abs); sed -i '/IMAGE/d' $d/stack.env; mkdir $d/app; add dockerfile-abs 'SERVICE_WEB_BUILD=app\nSERVICE_WEB_DOCKERFILE=/etc/os-release\n'
d=$(base envdir-file); rm -rf $d/environments; printf 'x' > $d/environments
d=$(base envdev-file); rm -rf $d/environments/dev; printf 'x' > $d/environments/dev
d=$(base secrets-dangling); rm $d/environments/dev/secrets.env; ln -s ../../../outside-secrets.env $d/environments/dev/secrets.env; sed -i 's/STACK_SERVICES=web/STACK_SERVICES=web\nPOSTGRES_ENABLED=true/' $d/stack.env; sed -i '/APP_SECRET/d' $d/stack.env
d=$(base secrets-b64-alone); printf 'dGhpcyBpcyBhIHNlY3JldA==\n' >> $d/environments/dev/secrets.env
d=$(base secrets-upper-alone); printf 'AKIAIOSFODNN7EXAMPLE\n' >> $d/environments/dev/secrets.env
d=$(base secrets-value-space); printf 'KEY=abc def\nOTHER HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
d=$(base secrets-lower-key); printf 'db_password=HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
d=$(base secrets-bad-interp); printf 'P=abc${HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
d=$(base secrets-quote-after); printf 'P="abc"HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
d=$(base secrets-dollar); printf 'P=ab$HUNTER2canaryQ7Zx\n' >> $d/environments/dev/secrets.env
d=$(base secrets-nul-key); printf 'HUNTER2canaryQ7Zx\0=1\n' >> $d/environments/dev/secrets.env
d=$(base secrets-utf8); printf 'P=HUNTER2canaryQ7Zx\xc3\x28\n' >> $d/environments/dev/secrets.env
d=$(base secrets-ctrl); printf 'P=HUNTER2canaryQ7Zx\x07\n' >> $d/environments/dev/secrets.env; sed -i 's/APP_SECRET}/APP_SECRET}\nSERVICE_WEB_ENV_P=${P}/' $d/stack.env
d=$(base secrets-cr); printf 'P=HUNTER2canaryQ7Zx\r\r\n' >> $d/environments/dev/secrets.env; printf 'SERVICE_WEB_ENV_P=${P}\n' >> $d/stack.env
attack secret-in-volume 'SERVICE_WEB_VOLUMES=${APP_SECRET}:/x\n'
attack secret-in-healthcmd 'SERVICE_WEB_HEALTH=${APP_SECRET}\n'
attack secret-in-envfile 'SERVICE_WEB_ENV_FILE=${APP_SECRET}\n'
attack secret-in-unknown-key 'SERVICE_WEB_IMAGEX=${APP_SECRET}\n'
attack secret-in-stack-key 'STACK_DOMAIN=${APP_SECRET}\n'
d=$(base secret-in-set); echo
attack secret-in-publish 'SERVICE_WEB_PUBLISH=${APP_SECRET}\n'
attack secret-in-labels 'SERVICE_WEB_LABELS=a=${APP_SECRET}\n'
attack secret-in-sysctl 'SERVICE_WEB_SYSCTLS=${APP_SECRET}\n'
attack secret-in-envname 'SERVICE_WEB_ENV=${APP_SECRET}\n'
attack secret-in-depends 'SERVICE_WEB_DEPENDS_ON=${APP_SECRET}\n'
attack secret-in-networks 'SERVICE_WEB_NETWORKS=${APP_SECRET}\n'
attack secret-in-secretfiles 'SERVICE_WEB_SECRET_FILES=${APP_SECRET}\n'
attack secret-in-user 'SERVICE_WEB_USER=${APP_SECRET}!\n'
attack secret-in-tmpfs 'SERVICE_WEB_TMPFS=${APP_SECRET}\n'
attack secret-in-schedule 'SERVICE_WEB_SCHEDULE=${APP_SECRET}\n'
attack secret-in-auth 'SERVICE_WEB_BASIC_AUTH=${APP_SECRET}\n'
attack secret-in-notify 'STACK_NOTIFY_URLS=${APP_SECRET}\n'
attack secret-in-project-typo 'STACK_PROJEKT=${APP_SECRET}\n'
d=$(base secret-required-in-secrets); printf 'Q=${NOPE:?HUNTER2canaryQ7Zx}\n' >> $d/environments/dev/secrets.env
attack secret-in-route-path 'SERVICE_WEB_ROUTE=example.com/${APP_SECRET}\n'
echo done
