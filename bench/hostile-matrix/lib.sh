# The case generators' shared part (sourced by mk*.sh with C set to the cases folder):
# SECRET, the planted secret; base NAME, a minimal one-service project whose dev secret is
# SECRET (BASE_EXTRA: lines added to its stack.env); add NAME TEXT, TEXT appended to its
# stack.env (printf format); attack NAME TEXT, both.
SECRET=HUNTER2canaryQ7Zx
base() {
  local d=$C/$1; mkdir -p $d/environments/dev
  printf 'STACK_PROJECT=minimal\nSTACK_SERVICES=web\nSERVICE_WEB_IMAGE=stack-test/busybox:latest\nSERVICE_WEB_COMMAND=httpd -f -p 8080 -h /var/www\nSERVICE_WEB_PORT=8080\nSERVICE_WEB_ROUTE=${STACK_DOMAIN}\nSERVICE_WEB_ENV_APP_SECRET=${APP_SECRET}\n'"${BASE_EXTRA:-}" > $d/stack.env
  printf "APP_SECRET=$SECRET\n" > $d/environments/dev/secrets.env; chmod 600 $d/environments/dev/secrets.env
  echo $d
}
add() { printf "$2" >> $C/$1/stack.env; }
attack() { base "$1" >/dev/null; add "$1" "$2"; }
