#!/usr/bin/env bash
# What a CI job runs: the GitHub Actions action (action.yml) and the GitLab CI template
# (ci/gitlab/stack.gitlab-ci.yml) both call this one script, so the test
# (tests/ci.rs) exercises exactly what a pipeline runs.
#
#   ci/stack-ci.sh check ENV    pull/merge requests: `stack --env ENV build --check`
#   ci/stack-ci.sh deploy ENV   the main branch: `stack deploy ENV --yes`
#   ci/stack-ci.sh preview-up ENV NAME    a pull request opened or pushed to:
#                               `stack preview up NAME --from ENV`; prints its address
#                               (and writes it to STACK_CI_PREVIEW_URL_FILE when set)
#   ci/stack-ci.sh preview-down ENV NAME  the pull request closed: `stack preview down`
#
# Run it from the project directory (the checkout). Read from the environment:
#   STACK_SECRETS      the contents of `environments/ENV/secrets.env`: written 0600 for the
#                      run and removed afterwards (optional: STACK_SECRETS_COMMAND works too)
#   STACK_SSH_KEY      deploy: the private key, its contents or the path of a file holding
#                      it (a GitLab "file" variable); without it an ssh-agent must hold one
#   STACK_KNOWN_HOSTS  deploy: known_hosts lines for the server (contents or a file path);
#                      required: a pipeline never trusts a host key on first use
#   STACK_CI_OUT       check: the committed bundle directory (default `.stack/ENV`)
#   STACK_CI_LOCK_WAIT deploy: how long to wait for another deploy's lock (default 5m)
#   STACK_CI_MESSAGE   deploy: the note in the lock and audit log (default: the commit)
#   STACK              the stack binary (default: `stack` on PATH)
#
# The exit code is stack's (0 ok, 1 stale bundle / rolled back / lock held / audit
# failed, 2 bad project file or usage, 3 server unreachable or SSH refused); this script
# adds 2 for bad usage and 3 for a deploy without an SSH key or known hosts. The key and
# the secrets are never printed: they go to files (0600, in a 0700 temporary directory, or
# the secrets file), which are removed on exit.
set -uo pipefail

log() { echo "stack-ci: $*" >&2; }
die() {
    local code="$1"
    shift
    echo "error: $1" >&2
    [ $# -ge 2 ] && echo "hint: $2" >&2
    exit "$code"
}

usage="usage: stack-ci.sh check|deploy ENV, or stack-ci.sh preview-up|preview-down ENV NAME"
[ $# -ge 2 ] || die 2 "expected a command and an environment" "$usage"
command="$1"
env="$2"
preview=""
case "$command" in
check | deploy) [ $# -eq 2 ] || die 2 "\`$command\` takes an environment only" "$usage" ;;
preview-up | preview-down)
    [ $# -eq 3 ] || die 2 "\`$command\` takes an environment and a preview name" "$usage"
    preview="$3"
    case "$preview" in
    '' | -*) die 2 "\`$preview\` is not a preview name" "name it after the pull request, e.g. \`pr-42\`" ;;
    esac
    ;;
*) die 2 "unknown command \`$command\`" "$usage" ;;
esac
case "$env" in
'' | -* | *[!A-Za-z0-9._-]*) die 2 "\`$env\` is not an environment name" "$usage" ;;
esac
stack="${STACK:-stack}"
command -v "$stack" >/dev/null 2>&1 ||
    die 3 "\`$stack\` is not installed" "install the .deb or the static binary first (README, \"In CI\")"
[ -f stack.env ] || die 2 "no \`stack.env\` in $(pwd)" "run the job in the project directory"
export CI="${CI:-true}"

umask 077
private="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/stack-ci.XXXXXX")" || die 3 "cannot create a temporary directory"
secrets_file=""
cleanup() {
    rm -rf "$private"
    if [ -n "$secrets_file" ]; then rm -f "$secrets_file"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Contents, or the path of a file holding them (GitLab "file" variables are paths).
# Carriage returns are dropped and a final newline added: ssh refuses a key without one.
write_value() {
    local value="$1" target="$2"
    if [ -f "$value" ]; then
        tr -d '\r' <"$value" >"$target"
    else
        printf '%s\n' "$value" | tr -d '\r' >"$target"
    fi
    chmod 600 "$target"
}

if [ -n "${STACK_SECRETS:-}" ]; then
    [ -d "environments/$env" ] || die 2 "no folder \`environments/$env\`" "is \`$env\` an environment of this project?"
    target="environments/$env/secrets.env"
    [ -e "$target" ] && die 2 "\`$target\` exists already, and STACK_SECRETS would replace it" \
        "remove it from the checkout (it is in .gitignore), or unset STACK_SECRETS"
    secrets_file="$target"
    write_value "$STACK_SECRETS" "$secrets_file"
fi

run_check() {
    local out="${STACK_CI_OUT:-.stack/$env}"
    if [ -d "$out" ]; then
        log "checking that \`$out\` is what \`$env\` renders"
        "$stack" --env "$env" build --check --out "$out"
    else
        # Nothing committed to compare with: rendering validates the project all the same.
        log "no bundle at \`$out\`: rendering \`$env\` into a temporary directory to validate it"
        "$stack" --env "$env" build --out "$private/bundle"
    fi
}

# The deploy key and the server's known hosts into a private ssh config (stack passes it
# with -F): nothing is left in ~/.ssh of a runner that is reused, and no host key is ever
# accepted unseen.
ssh_setup() {
    if [ -n "${STACK_SSH_KEY:-}" ]; then
        write_value "$STACK_SSH_KEY" "$private/key"
    elif [ -z "${SSH_AUTH_SOCK:-}" ]; then
        die 3 "no SSH key for the deploy: STACK_SSH_KEY is not set and no ssh-agent runs" \
            "set STACK_SSH_KEY (the action's \`ssh-key\` input, a GitLab file variable) to the deploy user's private key"
    fi
    [ -n "${STACK_KNOWN_HOSTS:-}" ] ||
        die 3 "no known hosts for the deploy: STACK_KNOWN_HOSTS is not set" \
            "set it to the server's line(s) of \`ssh-keyscan -p PORT HOST\`, checked once by hand"
    write_value "$STACK_KNOWN_HOSTS" "$private/known_hosts"
    {
        echo "Host *"
        echo "  UserKnownHostsFile $private/known_hosts"
        echo "  GlobalKnownHostsFile /dev/null"
        echo "  StrictHostKeyChecking yes"
        echo "  BatchMode yes"
        echo "  PasswordAuthentication no"
        if [ -f "$private/key" ]; then
            echo "  IdentityFile $private/key"
            echo "  IdentitiesOnly yes"
        fi
    } >"$private/ssh_config"
    export STACK_SSH_CONFIG="$private/ssh_config"
}

run_deploy() {
    ssh_setup
    local message="${STACK_CI_MESSAGE:-${CI_COMMIT_SHORT_SHA:-${GITHUB_SHA:-}}}"
    if [ -z "$message" ]; then message="$(git rev-parse --short HEAD 2>/dev/null || echo ci)"; fi
    log "deploying \`$env\`"
    "$stack" deploy "$env" --yes --lock-wait "${STACK_CI_LOCK_WAIT:-5m}" -m "$message"
}

run_preview_up() {
    ssh_setup
    local message="${STACK_CI_MESSAGE:-${CI_COMMIT_SHORT_SHA:-${GITHUB_SHA:-ci}}}"
    log "creating or updating the preview \`$preview\` of \`$env\`"
    local url
    url="$("$stack" preview up "$preview" --from "$env" \
        --lock-wait "${STACK_CI_LOCK_WAIT:-5m}" -m "$message")" || return $?
    printf '%s\n' "$url"
    if [ -n "${STACK_CI_PREVIEW_URL_FILE:-}" ]; then printf '%s\n' "$url" >"$STACK_CI_PREVIEW_URL_FILE"; fi
}

run_preview_down() {
    ssh_setup
    log "removing the preview \`$preview\` of \`$env\`"
    "$stack" preview down "$preview" --on "$env"
}

case "$command" in
check) run_check ;;
deploy) run_deploy ;;
preview-up) run_preview_up ;;
preview-down) run_preview_down ;;
esac
code=$?
[ "$code" -eq 0 ] || log "\`stack\` exited with $code"
exit "$code"
