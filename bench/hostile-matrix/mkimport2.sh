#!/bin/bash
# The import classes mkimport.sh lacks (session 6): the classic alias bomb, huge line
# counts, unicode names, NUL bytes, and every file a compose file names (env_file,
# secrets, configs, extends, include, .env) as a FIFO, a device or /proc. Cases under
# ${HOSTILE_DIR:-/tmp/stack-hostile}/imp2.
set -e
C=${HOSTILE_DIR:-/tmp/stack-hostile}/imp2; rm -rf $C; mkdir -p $C
SECRET=HUNTER2canaryQ7Zx
mk() { mkdir -p $C/$1; printf "$2" > $C/$1/docker-compose.yml; }
mk laughs-seq 'x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
python3 - "$C/laughs-seq/docker-compose.yml" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
prev = 'a'
for i, n in enumerate('bcdefghi'):
    s += 'x-%s: &%s [%s]\n' % (n, n, ','.join('*' + prev for _ in range(9))); prev = n
s += 'services:\n  web:\n    image: nginx\n    command: *i\n'
open(p, 'w').write(s)
PY
mk laughs-unused 'x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
python3 - "$C/laughs-unused/docker-compose.yml" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
prev = 'a'
for n in 'bcdefghij':
    s += 'x-%s: &%s [%s]\n' % (n, n, ','.join('*' + prev for _ in range(9))); prev = n
s += 'services:\n  web:\n    image: nginx\n'
open(p, 'w').write(s)
PY
mk laughs-keys 'x-a: &a {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol}\n'
python3 - "$C/laughs-keys/docker-compose.yml" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
prev = 'a'
for n in 'bcdefgh':
    s += 'x-%s: &%s {%s}\n' % (n, n, ', '.join('k%d: *%s' % (j, prev) for j in range(8))); prev = n
s += 'services:\n  web:\n    image: nginx\n    environment: *h\n'
open(p, 'w').write(s)
PY
mkdir -p $C/lines-empty; python3 -c "open('$C/lines-empty/docker-compose.yml','w').write('services:\n  a:\n    image: nginx\n'+'\n'*8_000_000)"
mkdir -p $C/env-keys-200k; python3 -c "open('$C/env-keys-200k/docker-compose.yml','w').write('services:\n  a:\n    image: nginx\n    environment:\n'+''.join('      K%d: v\n'%i for i in range(200_000)))"
mkdir -p $C/dotenv-lines; python3 -c "open('$C/dotenv-lines/.env','w').write(''.join('K%d=v\n'%i for i in range(1_000_000)))"; printf 'services:\n  a:\n    image: nginx:${K1}\n' > $C/dotenv-lines/docker-compose.yml
mk uni-service-emoji 'services:\n  \xf0\x9f\x90\xb3:\n    image: nginx\n'
mk uni-service-only-combining 'services:\n  \xcc\x81\xcc\x81:\n    image: nginx\n'
mk uni-env-key 'services:\n  a:\n    image: nginx\n    environment:\n      \xc3\x89T\xc3\x89: 1\n'
mk uni-volume 'services:\n  a:\n    image: nginx\n    volumes: ["d\xc3\xa4ten:/data"]\nvolumes:\n  d\xc3\xa4ten: {}\n'
mk uni-network 'services:\n  a:\n    image: nginx\n    networks: [n\xc3\xa9t]\nnetworks:\n  n\xc3\xa9t: {}\n'
mk nul-key 'services:\n  a:\n    image: nginx\n    environment:\n      K\0: 1\n'
mk nul-dotenv 'services:\n  a:\n    image: nginx:${T}\n'; printf "T=1\0$SECRET\n" > $C/nul-dotenv/.env
mk nul-envfile 'services:\n  a:\n    image: nginx\n    env_file: e.env\n'; printf "A=1\0$SECRET\n" > $C/nul-envfile/e.env
mk envfile-fifo 'services:\n  a:\n    image: nginx\n    env_file: f.env\n'; mkfifo $C/envfile-fifo/f.env
mk envfile-environ 'services:\n  a:\n    image: nginx\n    env_file: /proc/self/environ\n'
mk envfile-stdin 'services:\n  a:\n    image: nginx\n    env_file: /dev/stdin\n'
mk dotenv-fifo 'services:\n  a:\n    image: nginx:${T}\n'; mkfifo $C/dotenv-fifo/.env
mk dotenv-dir 'services:\n  a:\n    image: nginx:${T}\n'; mkdir $C/dotenv-dir/.env
mk secret-file-fifo 'services:\n  a:\n    image: nginx\n    secrets: [s]\nsecrets:\n  s:\n    file: f\n'; mkfifo $C/secret-file-fifo/f
mk secret-file-urandom 'services:\n  a:\n    image: nginx\n    secrets: [s]\nsecrets:\n  s:\n    file: /dev/urandom\n'
mk config-file-fifo 'services:\n  a:\n    image: nginx\n    configs: [c]\nconfigs:\n  c:\n    file: f\n'; mkfifo $C/config-file-fifo/f
mk extends-file-fifo 'services:\n  a:\n    extends:\n      file: f.yml\n      service: x\n'; mkfifo $C/extends-file-fifo/f.yml
mk extends-file-urandom 'services:\n  a:\n    extends:\n      file: /dev/urandom\n      service: x\n'
mk extends-file-dir 'services:\n  a:\n    extends:\n      file: sub\n      service: x\n'; mkdir $C/extends-file-dir/sub
mk include-urandom 'include:\n  - u.yml\nservices:\n  a:\n    image: nginx\n'; ln -s /dev/urandom $C/include-urandom/u.yml
mk include-stdin 'include:\n  - /dev/stdin\nservices:\n  a:\n    image: nginx\n'
mk include-envfile-fifo 'include:\n  - path: sub.yml\n    env_file: f.env\nservices:\n  a:\n    image: nginx\n'; printf 'services:\n  b:\n    image: nginx\n' > $C/include-envfile-fifo/sub.yml; mkfifo $C/include-envfile-fifo/f.env
mk compose-fifo-self ''; rm $C/compose-fifo-self/docker-compose.yml; mkfifo $C/compose-fifo-self/docker-compose.yml
mk compose-zero-self ''; rm $C/compose-zero-self/docker-compose.yml; ln -s /dev/zero $C/compose-zero-self/docker-compose.yml
mk dockerfile-outside 'services:\n  a:\n    build:\n      context: .\n      dockerfile: ../../../../etc/os-release\n'
echo done
