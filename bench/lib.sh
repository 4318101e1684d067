# Shared by bench/ssh.sh and bench/soak.sh, sourced once they have moved
# to the repository's root: package installs, timing, the login user and
# its keys, the sshd settings both use, and the way Ansible and plain ssh
# are configured, so that both benchmarks set the tools up the same way.

# The key exchange cutover negotiates (libssh2 1.10).  OpenSSH's default,
# sntrup761x25519-sha512, costs ~80 ms of client CPU per connection, which
# would dominate the other two tools' figures; all three use this one.
BENCH_KEX=curve25519-sha256

apt_install() { # apt_install PACKAGE...: quietly; returns apt-get's status
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; }
}

now() { date +%s.%N; }
elapsed() { # elapsed T0 T1 [DECIMALS (6)]: seconds from T0 to T1
    awk -v a="$1" -v b="$2" -v d="${3:-6}" 'BEGIN {printf "%." d "f", b - a}'
}

# bench_login WORK USER: the login user (created if missing: shell /bin/sh,
# password field '*', so only keys log in), and in WORK the host key
# (host_ed25519), the user's key (user_key) and authorized_keys.  Not the
# tests' `cutover-test`: tests/ssh/test_rollout.lua kills every sshd
# session of that user, which would break a benchmark running meanwhile.
bench_login() {
    local work=$1 user=$2
    mkdir -p /run/sshd
    id -u "$user" >/dev/null 2>&1 ||
        { useradd --create-home --shell /bin/sh "$user" && usermod -p '*' "$user"; }
    ssh-keygen -q -t ed25519 -N '' -f "$work/host_ed25519" -C cutover-bench-host
    ssh-keygen -q -t ed25519 -N '' -f "$work/user_key" -C "$user"
    cp "$work/user_key.pub" "$work/authorized_keys"
    chmod 644 "$work/authorized_keys"    # sshd reads it as the user
}

# bench_sshd_settings WORK: the sshd_config lines both benchmarks share
# (keys only, no PAM, quiet); each adds its ports, addresses and limits.
bench_sshd_settings() {
    printf '%s\n' "HostKey $1/host_ed25519" "AuthorizedKeysFile $1/authorized_keys" \
        "StrictModes no" "UsePAM no" "PasswordAuthentication no" \
        "KbdInteractiveAuthentication no" "PubkeyAuthentication yes" "LogLevel ERROR"
}

# bench_ansible_config WORK KNOWN_HOSTS: Ansible set up for speed
# (pipelining, ControlMaster with ControlPersist=60s, no fact gathering,
# no interpreter discovery) and verifying host keys; exports ANSIBLE_CONFIG.
bench_ansible_config() {
    cat > "$1/ansible.cfg" <<EOF
[defaults]
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
retry_files_enabled = False
nocolor = True
local_tmp = $1/home/.ansible/tmp
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$2 -o StrictHostKeyChecking=yes -o KexAlgorithms=$BENCH_KEX
EOF
    export ANSIBLE_CONFIG=$1/ansible.cfg
}

# bench_ssh_opts KEY KNOWN_HOSTS USER [PORT]: sets the array ssh_opts,
# the plain ssh loop's options (no agent, no prompts, host keys verified).
bench_ssh_opts() {
    ssh_opts=(-o KexAlgorithms="$BENCH_KEX" -o BatchMode=yes -o IdentitiesOnly=yes -i "$1"
              -o UserKnownHostsFile="$2" -o StrictHostKeyChecking=yes -l "$3")
    if [[ -n ${4:-} ]]; then ssh_opts+=(-p "$4"); fi
}

close_masters() { # close_masters SOCKET...: ask each ControlMaster there to exit
    local s
    for s in "$@"; do
        if [[ -S $s ]]; then ssh -S "$s" -O exit x >/dev/null 2>&1; fi
    done
}
