# Sourced by the benchmarks: a private sshd on 127.0.0.1:$port for root with a fresh key,
# its files in $work, and STACK_SSH_CONFIG pointing stack's ssh at them.
# Usage: start_sshd WORK PORT   (stop it with: kill "$(cat WORK/sshd.pid)")
start_sshd() {
    local work="$1" port="$2"
    ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$work/client_key"
    cp "$work/client_key.pub" "$work/authorized_keys"
    mkdir -p /run/sshd
    cat > "$work/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM no
AllowStreamLocalForwarding yes
AllowTcpForwarding yes
CFG
    /usr/sbin/sshd -f "$work/sshd_config"
    echo "[127.0.0.1]:$port $(cut -d' ' -f1-2 "$work/host_key.pub")" > "$work/known_hosts"
    printf 'Host *\n  UserKnownHostsFile %s\n  IdentityFile %s\n' "$work/known_hosts" "$work/client_key" > "$work/ssh_config"
    export STACK_SSH_CONFIG="$work/ssh_config"
}

# A deploy user as a fresh VM has one: Debian's default shell files, in the `docker`
# group, key login only. (This machine's root ~/.bashrc runs `pyenv init`, about 0.45 s
# on every SSH command, which no server has.) Its home and SERVER_PATH are WORK/...
# Usage: bench_user WORK   (prints the user name; the user is kept for later runs)
bench_user() {
    local work="$1" user=stack-bench
    id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash -G docker "$user"
    usermod -p '*' "$user"   # unlocked for key login (sshd refuses locked accounts without PAM)
    chmod 755 "$work"
    chmod 644 "$work/authorized_keys"
    mkdir -p "$work/srv"
    chown "$user" "$work/srv"
    echo "$user"
}

# Point a project's staging environment at the private sshd as the bench user, SERVER_PATH
# in WORK/srv; extra `KEY=value` lines follow.
# Usage: staging_server PROJECT PORT USER WORK [LINE...]
staging_server() {
    local proj="$1" port="$2" user="$3" work="$4"
    shift 4
    mkdir -p "$proj/environments/staging"
    {
        printf 'SERVER_HOST=127.0.0.1\nSERVER_PORT=%s\nSERVER_USER=%s\nSERVER_PATH=%s\n' \
            "$port" "$user" "$work/srv"
        for line in "$@"; do printf '%s\n' "$line"; done
    } > "$proj/environments/staging/server.env"
}
