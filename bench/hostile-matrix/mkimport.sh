#!/bin/bash
set -e
C=${HOSTILE_DIR:-/tmp/stack-hostile}/imp; rm -rf $C; mkdir -p $C
SECRET=HUNTER2canaryQ7Zx
mk() { mkdir -p $C/$1; printf "$2" > $C/$1/docker-compose.yml; }
mk merge-bomb "x-a0: &a0 {k0: lol, k1: lol, k2: lol, k3: lol, k4: lol, k5: lol, k6: lol, k7: lol, k8: lol}\n"
python3 - <<PY
d='$C/merge-bomb/docker-compose.yml'
s=open(d).read()
for i in range(1,14):
    s+='x-a%d: &a%d\n'%(i,i)+''.join('  m%d:\n    <<: *a%d\n'%(j,i-1) for j in range(9))
s+='services:\n  web:\n    image: nginx\n    labels:\n      <<: *a13\n'
open(d,'w').write(s)
PY
mk merge-self 'x-a: &a\n  b: 1\nservices:\n  web: &w\n    image: nginx\n    <<: [*a, *a, *a]\n  api:\n    <<: *w\n'
mk extends-loop 'services:\n  a:\n    image: nginx\n    extends: b\n  b:\n    extends: a\n'
mk extends-self 'services:\n  a:\n    image: nginx\n    extends:\n      service: a\n'
mk extends-file-shadow 'services:\n  a:\n    extends:\n      file: ../../../../etc/shadow\n      service: x\n'
mk extends-file-zero 'services:\n  a:\n    extends:\n      file: /dev/zero\n      service: x\n'
mk include-self 'include:\n  - docker-compose.yml\nservices:\n  a:\n    image: nginx\n'
mk include-zero 'include:\n  - /dev/zero\nservices:\n  a:\n    image: nginx\n'
mk include-fifo 'include:\n  - fifo.yml\nservices:\n  a:\n    image: nginx\n'; mkfifo $C/include-fifo/fifo.yml
mk include-dir 'include:\n  - sub\nservices:\n  a:\n    image: nginx\n'; mkdir $C/include-dir/sub
mk envfile-shadow 'services:\n  a:\n    image: nginx\n    env_file: ../../../../etc/shadow\n'
mk envfile-zero 'services:\n  a:\n    image: nginx\n    env_file: /dev/zero\n'
mk envfile-urandom 'services:\n  a:\n    image: nginx\n    env_file: z.env\n'; ln -s /dev/urandom $C/envfile-urandom/z.env
mk secret-file-shadow 'services:\n  a:\n    image: nginx\n    secrets: [s]\nsecrets:\n  s:\n    file: /etc/shadow\n'
mk secret-file-zero 'services:\n  a:\n    image: nginx\n    secrets: [s]\nsecrets:\n  s:\n    file: /dev/zero\n'
mk config-file-zero 'services:\n  a:\n    image: nginx\n    configs: [c]\nconfigs:\n  c:\n    file: /dev/zero\n'
mk build-outside 'services:\n  a:\n    build: ../../../../\n'
mk bind-outside 'services:\n  a:\n    image: nginx\n    volumes: [\"../../../../etc:/etc\"]\n'
mk dotenv-zero 'services:\n  a:\n    image: nginx:${TAG}\n'; ln -s /dev/zero $C/dotenv-zero/.env
mk dotenv-secret-badline 'services:\n  a:\n    image: nginx\n    environment:\n      P: ${P}\n'; printf "P=$SECRET\nbad line $SECRET\n" > $C/dotenv-secret-badline/.env
mk interp-required 'services:\n  a:\n    image: nginx:${TAG:?}\n'
mk interp-deep "services:\n  a:\n    image: nginx\n    environment:\n      X: \"$(python3 -c "print('\${Y:-'*100000+'z'+'}'*100000)")\"\n"
mk interp-recursive 'services:\n  a:\n    image: nginx:${A}\n'; printf 'A=${B}\nB=${A}\n' > $C/interp-recursive/.env
mk nul 'services:\n  a:\n    image: ngi\0nx\n'
mk invalid-utf8 'services:\n  a:\n    image: ngi\xffnx\n'
mk bom '\xef\xbb\xbfservices:\n  a:\n    image: nginx\n'
mk crlf 'services:\r\n  a:\r\n    image: nginx\r\n'
mk lonecr 'services:\r  a:\r    image: nginx\r'
mk tabs 'services:\n\ta:\n\t\timage: nginx\n'
mk lookalike 'services:\n  w\xd0\xb5b:\n    image: nginx\n  web:\n    image: nginx\n'
mk collide 'services:\n  my-app:\n    image: nginx\n  my_app:\n    image: nginx\n  My.App:\n    image: nginx\n'
mk bidi 'services:\n  a:\n    image: nginx\n    labels:\n      x: \"a\xe2\x80\xaeb\"\n'
mk ports 'services:\n  a:\n    image: nginx\n    ports: [\"0:80\", \"65536:80\", \"8000-8100:8000-8100\", \"8050:80\", \"1-65535:1-65535\"]\n'
mk ports-range-huge 'services:\n  a:\n    image: nginx\n    ports: [\"1-65535:1-65535\"]\n'
mk durations 'services:\n  a:\n    image: nginx\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 18446744073709551615s\n      timeout: 1e309s\n      retries: -1\n    stop_grace_period: -5s\n    mem_limit: 18446744073709551616g\n    cpus: 1e309\n    shm_size: -1\n'
mk deep-map "$(python3 -c "print('services:\n  a:\n    image: nginx\n    labels: '+'{a: '*100000+'1'+'}'*100000)")\n"
mk long-key "services:\n  a:\n    image: nginx\n    environment:\n      $(python3 -c "print('K'*3000000)"): x\n"
python3 -c "
n=5000
s='services:\n'+''.join('  s%d:\n    image: nginx\n    ports: [\"%d:80\"]\n'%(i,10000+i) for i in range(n))
open('$C/thousands/docker-compose.yml','w').write(s)" 2>/dev/null || { mkdir -p $C/thousands; python3 -c "
n=5000
s='services:\n'+''.join('  s%d:\n    image: nginx\n    ports: [\"%d:80\"]\n'%(i,10000+i) for i in range(n))
open('$C/thousands/docker-compose.yml','w').write(s)"; }
mkdir -p $C/huge100m; python3 -c "
f=open('$C/huge100m/docker-compose.yml','w'); f.write('services:\n  a:\n    image: nginx\n')
for i in range(3_000_000): f.write('# padding %d xxxxxxxxxxxxxxxxxxxxxx\n'%i)"
mk secret-in-env "services:\n  a:\n    image: nginx\n    environment:\n      DB_PASSWORD: $SECRET\n    command: [\"--pw=$SECRET\"]\n    ports: [\"$SECRET\"]\n"
mk secret-in-bad-port "services:\n  a:\n    image: nginx\n    environment:\n      DB_PASSWORD: \${DB_PASSWORD}\n    ports: [\"\${DB_PASSWORD}\"]\n"; printf "DB_PASSWORD=$SECRET\n" > $C/secret-in-bad-port/.env
mk dotenv-deep 'services:\n  a:\n    image: nginx:${X}\n    environment:\n      X: ${X}\n'
python3 -c "open('$C/dotenv-deep/.env','w').write('X='+'\${Y:-'*100000+'z'+'}'*100000+'\n')"
echo done
