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
