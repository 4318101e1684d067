-- connection.session: the persistent remote runner of a POSIX SSH host
-- (docs/ssh.md, "One session per host").  One exec channel runs a shell
-- (M.SHELL); a bootstrap of plain POSIX sh, sent on that channel's stdin, then runs
-- each step on request, so a step costs no channel, no sshd fork and no
-- login shell of its own.
--
-- Requests (controller -> host):
--   X <lines> <stdin bytes> <cap>[ A]\n  the command as <lines> lines, then
--                                    exactly <stdin bytes> bytes (A: the
--                                    lines are quoted argv words)
-- Replies (host -> controller), every line led by a token drawn at
-- random for this session:
--   T K <pid>        ready (after the bootstrap has been read whole)
--   T N <reason>     this host cannot run the session (the caller falls
--                    back to one channel per step)
--   T P <pid>        the step started; pid is its process group
--   T N <reason>     (instead of P) the step was not started, the
--                    session ends (its private folder is gone: a step
--                    removed it and it could not be made again)
--   T R <rc>         the step ended; then its stdout (at most cap+1
--                    bytes: one more than the cap tells a cut stream),
--   \nT O\n          then its stderr (the same),
--   \nT E\n          end of the reply
--   T Z <rc>         (instead of R and the rest) the step ended and
--                    wrote nothing on either stream
-- Z is a reply of one line: one write, so one SSH packet, under every
-- shell (bash flushes a builtin's output at each newline, so an R reply
-- with its empty streams cost five writes there, and the controller
-- five packets to decrypt and check).
-- The step's output goes to files in a private 0700 folder and is sent
-- once the step has ended, between markers that hold the token: a
-- command cannot print a marker without the token, which it never sees,
-- and no count can be thrown off by a process the step left behind that
-- goes on writing its files.  A line or a marker that does not come where
-- it is due means the reply lost its place (the session is then given
-- up), as does a stream longer than cap+1.  The token
-- is never an argument of a command (other users of the host see those
-- in ps): it comes inside the bootstrap on stdin, and a step's starter
-- gets it in its environment and unsets it before the step runs.  The
-- bootstrap's variables are __cs_*, unset before use: an exported
-- variable of the login environment neither changes them nor is
-- changed for the step.
--
-- Each step runs in a child process of its own, in a process group of
-- its own: a background job of a bash session with job control (set -m:
-- bash makes the group before the job runs; only without stdin data and
-- without a controlling terminal), else started with setsid (a session
-- and group).  A request whose header ends in " A" is argv words only
-- (Conn:exec, M.direct_ok): a bash session's job execs them without the
-- login shell when the program is a file (else $SHELL -c, as always).
-- A bash session gives back the SHLVL level it added, so a step's bash
-- sees the level sshd would give it (and reads ~/.bashrc as it would).
-- Stdin comes from the request's bytes (piped straight
-- from the request stream, never staged in a file: they may hold sudo's
-- password; what the step leaves unread is drained after it ends, so the
-- next request keeps its place) or /dev/null, through the login shell ($SHELL -c, as sshd would run it),
-- so nothing it does to its shell (cd, export, traps, set -e, exec, exit,
-- reading stdin to the end) reaches the next step.  A login shell that is
-- busybox itself runs it as `busybox sh -c` (busybox has no -c of its own).
--
-- Reading exact byte counts in sh: the command travels as lines read by
-- the `read` builtin (POSIX: it takes one byte at a time from a pipe, so
-- it never reads ahead); stdin data, when a step has any, is read by
-- GNU `head -c N` (reads at most what is left of N, one buffer at a time)
-- where head is GNU's, else by `dd bs=1 count=N` (POSIX, exact, one byte
-- per read: slow, only for hosts without GNU coreutils); either pipes
-- into the step.  busybox head
-- reads through stdio and could take bytes of the next request, so it
-- is never used on the pipe.  Output files are sent with head -c / dd of
-- a regular file, where reading ahead cannot matter.
--
-- The private folder is made in $TMPDIR when the login sets it, else in
-- /dev/shm when that is a writable, sticky folder with at least
-- 256 MiB free (df -Pk: RAM, where making a file costs a tenth of what
-- it costs on a journalled disk; two files a step made /tmp's ext4 the
-- largest cost of a step here), else in /tmp (also when no folder can
-- be made in /dev/shm after all).  Small /dev/shm folders (a
-- container's 64 MiB) are passed over: a step's whole output is held
-- there until it ends.  The clean-up below looks in the folder's own
-- parent and in /tmp and /dev/shm (sticky ones only), so a folder left
-- where an earlier version or an earlier choice put it goes too.
--
-- The private folder's name holds the session shell's pid
-- (cutover-session.<pid>.<random>, made whole by mktemp: no window where
-- the pid is not there yet): a session that was killed (SIGKILL runs no
-- trap) leaves its folder, and the next session of that user on the host
-- removes the folders whose shell is gone (no such process, or a zombie):
-- only real folders (no symlink) the user owns.  A folder not named
-- <pid>.<random> (cutover-session.<random>, made by earlier versions) is
-- judged by the pid file in it: no symlink, the user's, and a number.
-- The session writes that file too (a builtin printf, no process): it
-- proves the folder takes data (a full tmpfs still makes folders; the
-- session then says N and the host runs a channel per step), and lets an
-- earlier version's clean-up judge this folder.
local crypto = require("cutover.core.crypto")
local loop = require("cutover.core.loop")

local M = {}

M.DEFAULT_CAP = 8 * 1024 * 1024
-- The most one stream of a reply may carry (sh:recv_until's limit in
-- core/ssh/shell.c): a larger cap is sent as this.
M.MAX_CAP = 256 * 1024 * 1024
-- What the channel runs (through the login shell): bash in POSIX mode
-- (no startup file read) where the host has it, for its job control;
-- else /bin/sh.  Tests run the bootstrap under dash, bash and busybox.
M.SHELL = "command -v bash >/dev/null 2>&1 && exec bash --posix; exec /bin/sh"
M.LINE_MAX = 1024
-- A request's lines are given up once they have not moved for this
-- many seconds (a slow link that keeps moving is waited for).
M.SEND_STALL = 60

-- The bootstrap: a function definition and one call to it.  The caller
-- sends nothing more until the K (or N) line arrives, so the shell's
-- parser, which may read its input a buffer at a time, never takes bytes
-- of a request.
M.BOOT = [=[
__cutover_session() {
unset __cs_T __cs_S __cs_G __cs_J __cs_d __cs_o __cs_p __cs_n __cs_w __cs_a __cs_b __cs_c __cs_x __cs_i __cs_l __cs_r \
__cs_k __cs_v __cs_nl __cs_P __cs_L __cs_LV __cs_LE
__cs_T=$1
__cs_nl='
'
command -v setsid >/dev/null 2>&1 || { printf '%s N %s\n' "$__cs_T" 'setsid is not installed'; return 0; }
__cs_S=${2:-${SHELL:-/bin/sh}}
case ${__cs_S##*/} in
sh|bash|dash|ash|ksh|ksh93|mksh|pdksh|zsh|yash|posh|busybox) ;;
*) printf '%s N %s\n' "$__cs_T" "the login shell $__cs_S is not a POSIX shell"; return 0;;
esac
__cs_G=
case $(head --version 2>/dev/null) in *GNU*) __cs_G=1;; esac
__cs_J=
if [ "${BASHPID:-}" = "$$" ]; then
SHLVL=$((${SHLVL:-1} - 1))
if ! { true < /dev/tty; } 2>/dev/null && set -m 2>/dev/null; then
case $- in *m*) __cs_J=1;; esac
fi
fi
__cs_o=${TMPDIR:-}
if [ -z "$__cs_o" ]; then
__cs_o=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ] && [ -k /dev/shm ]; then
__cs_a=$(df -Pk /dev/shm 2>/dev/null) || __cs_a=
case $__cs_a in
*"$__cs_nl"*) set -f; set -- ${__cs_a#*"$__cs_nl"}; set +f; __cs_a=${4-};;
*) __cs_a=;;
esac
case $__cs_a in ''|*[!0-9]*) ;; *) [ "$__cs_a" -ge 262144 ] && __cs_o=/dev/shm;; esac
fi
fi
__cs_d=$(umask 077; mktemp -d "$__cs_o/cutover-session.$$.XXXXXXXX" 2>/dev/null) || __cs_d=
if [ -z "$__cs_d" ] && [ "$__cs_o" = /dev/shm ]; then
__cs_d=$(umask 077; mktemp -d "/tmp/cutover-session.$$.XXXXXXXX" 2>/dev/null) || __cs_d=
fi
case $__cs_d in
/*) case $__cs_d in *[!A-Za-z0-9_./-]*) rm -rf "$__cs_d"; __cs_d=;; esac;;
*) __cs_d=;;
esac
[ -n "$__cs_d" ] || { printf '%s N %s\n' "$__cs_T" 'no private temporary folder'; return 0; }
trap 'rm -rf "$__cs_d"' EXIT
printf '%s\n' "$$" 2>/dev/null > "$__cs_d/pid" ||
{ printf '%s N %s\n' "$__cs_T" 'cannot write in the private folder'; return 0; }
__cs_i=0
for __cs_w in "${__cs_d%/*}" /tmp /dev/shm; do
__cs_i=$((__cs_i+1))
if [ "$__cs_i" -gt 1 ]; then
[ "$__cs_w" != "${__cs_d%/*}" ] && [ -d "$__cs_w" ] && [ -k "$__cs_w" ] || continue
fi
for __cs_o in "$__cs_w"/cutover-session.*; do
[ "$__cs_o" != "$__cs_d" ] && [ -d "$__cs_o" ] && [ ! -h "$__cs_o" ] && [ -O "$__cs_o" ] || continue
__cs_p=${__cs_o##*/cutover-session.}
case $__cs_p in
[0-9]*.*) __cs_p=${__cs_p%%.*};;
*) __cs_p=;;
esac
case $__cs_p in
''|*[!0-9]*)
__cs_p=
[ -f "$__cs_o/pid" ] && [ ! -h "$__cs_o/pid" ] && [ -O "$__cs_o/pid" ] || continue
read -r __cs_p < "$__cs_o/pid" 2>/dev/null
case $__cs_p in ''|*[!0-9]*) continue;; esac;;
esac
if kill -0 "$__cs_p" 2>/dev/null; then
__cs_l=
read -r __cs_l 2>/dev/null < "/proc/$__cs_p/stat"
case $__cs_l in *') Z '*) ;; *) continue;; esac
fi
rm -rf "$__cs_o"
done
done
trap 'exit 129' HUP
trap 'exit 141' PIPE
trap 'exit 143' TERM
__cs_n=0
printf '%s K %s\n' "$__cs_T" "$$"
while IFS=' ' read -r __cs_w __cs_a __cs_b __cs_c __cs_v; do
[ "$__cs_w" = X ] || break
__cs_x= __cs_i=0
while [ "$__cs_i" -lt "$__cs_a" ]; do
IFS= read -r __cs_l || exit 1
if [ "$__cs_i" = 0 ]; then __cs_x=$__cs_l; else __cs_x=$__cs_x$__cs_nl$__cs_l; fi
__cs_i=$((__cs_i+1))
done
__cs_n=$((__cs_n+1))
if ! { [ -d "$__cs_d" ] && [ ! -h "$__cs_d" ] && [ -O "$__cs_d" ]; }; then
mkdir -m 700 "$__cs_d" 2>/dev/null && printf '%s\n' "$$" 2>/dev/null > "$__cs_d/pid" ||
{ printf '%s N %s\n' "$__cs_T" 'the private folder is gone'; exit 0; }
fi
if [ "$__cs_b" -gt 0 ]; then
if [ -n "$__cs_G" ]; then head -c "$__cs_b"; else dd bs=1 count="$__cs_b" 2>/dev/null; fi | {
__cs_P=$__cs_T setsid /bin/sh -c \
'printf "%s P %s\n" "$__cs_P" "$$" >&3 || exit 126; unset __cs_P; exec 3>&-
case $0 in *busybox) exec "$0" sh -c "$1";; esac; exec "$0" -c "$1"' "$__cs_S" "$__cs_x" \
3>&1 > "$__cs_d/o$__cs_n" 2> "$__cs_d/e$__cs_n"
__cs_r=$?
cat > /dev/null
exit $__cs_r
}
__cs_r=$?
elif [ -n "$__cs_J" ]; then
{ printf '%s P %s\n' "$__cs_T" "$BASHPID" >&3 || exit 126
if [ "$__cs_v" = A ]; then
eval "set -- $__cs_x"
case $1 in
*/*) [ -f "$1" ] && [ -x "$1" ] && exec "$@" 3>&-;;
*) hash -r; hash -- "$1" 2>/dev/null && exec "$@" 3>&-;;
esac
fi
case $__cs_S in *busybox) exec "$__cs_S" sh -c "$__cs_x" 3>&-;; esac
exec "$__cs_S" -c "$__cs_x" 3>&-
} 3>&1 < /dev/null > "$__cs_d/o$__cs_n" 2> "$__cs_d/e$__cs_n" &
__cs_p=$!
wait "$__cs_p" 2>/dev/null
__cs_r=$?
while [ "$__cs_r" -gt 128 ] && [ -n "$(jobs -sp)" ]; do
sleep 1; wait "$__cs_p" 2>/dev/null; __cs_r=$?
done
else
__cs_P=$__cs_T setsid /bin/sh -c \
'printf "%s P %s\n" "$__cs_P" "$$" >&3 || exit 126; unset __cs_P; exec 3>&-
case $0 in *busybox) exec "$0" sh -c "$1";; esac; exec "$0" -c "$1"' "$__cs_S" "$__cs_x" \
3>&1 < /dev/null > "$__cs_d/o$__cs_n" 2> "$__cs_d/e$__cs_n"
__cs_r=$?
fi
__cs_k=$((__cs_c+1))
if ! [ -s "$__cs_d/o$__cs_n" ] && ! [ -s "$__cs_d/e$__cs_n" ]; then
printf '%s Z %s\n' "$__cs_T" "$__cs_r"
else
printf '%s R %s\n' "$__cs_T" "$__cs_r"
for __cs_o in o e; do
if [ -s "$__cs_d/$__cs_o$__cs_n" ]; then
if [ -n "$__cs_G" ]; then head -c "$__cs_k" "$__cs_d/$__cs_o$__cs_n"
else dd if="$__cs_d/$__cs_o$__cs_n" bs="$__cs_k" count=1 2>/dev/null; fi
[ -h "$__cs_d" ] || true 2>/dev/null > "$__cs_d/$__cs_o$__cs_n"
fi
if [ "$__cs_o" = o ]; then printf '\n%s O\n' "$__cs_T"; else printf '\n%s E\n' "$__cs_T"; fi
done
fi
if [ $((__cs_n % 32)) = 0 ]; then
[ -h "$__cs_d" ] || rm -f "$__cs_d"/[eo][0-9]*
fi
done
exit 0
}
]=]

-- Names a shell resolves before the PATH (builtins of dash and bash,
-- reserved words): a command that starts with one keeps the login
-- shell, so it means what it meant under `$SHELL -c`.
local SHELL_OWN = {}
for w in ([=[! . : [ [[ ]] { } alias bg break builtin caller case cd command compgen complete
    compopt continue coproc declare dirs disown do done echo elif else enable esac eval exec exit
    export false fc fg fi for function getopts hash help history if in jobs kill let local logout
    mapfile popd printf pushd pwd read readarray readonly return select set shift shopt source
    suspend test then time times trap true type typeset ulimit umask unalias unset until wait
    while]=]):gmatch("%S+") do
    SHELL_OWN[w] = true
end

-- May a command whose first word is name run without the login shell
-- (exec'd straight from the session's job)?  Not a builtin or reserved
-- word, not an assignment.
function M.direct_ok(name)
    name = tostring(name or "")
    return name ~= "" and not SHELL_OWN[name] and not name:find("=", 1, true)
end

-- The line sent before the bootstrap (body: the bootstrap and its call).
-- bash reads a script on a pipe one byte per read (so as never to take
-- bytes meant for a command it runs): about 5,000 reads, a fifth of
-- the CPU a session's start costs the host.  Outside POSIX mode, bash
-- reads `read -N count` in blocks of at most what is left of the count
-- (128 bytes in 4.3 to 5.0, 4 KiB from 5.1; 4.0 has no -N, 4.1 and 4.2
-- read it a byte at a time), so under bash 4.4 and later (for ${v@a})
-- this line, itself read a byte at a time, takes the body whole and
-- evaluates it.  Leaving POSIX mode unsets POSIXLY_CORRECT and entering
-- it sets it to y, unexported: its value and export are put back, so a
-- login environment that exports it still passes it to every step.  -N
-- counts characters: the body must be ASCII, else no line is sent.
-- Other shells (dash, busybox: they read a script in blocks already)
-- skip the line and read the body as the script's next lines.  It asks
-- for both BASHPID equal to $$ and a bash version: an exported
-- BASH_VERSION alone (under dash) or a BASHPID alone (mksh has one) does
-- not take it.
function M.loader(body)
    if body:find("[^\1-\127]") then return "" end
    return ("if [ \"${BASHPID-}\" = \"$$\" ]; then case ${BASH_VERSION-} in 4.[4-9]*|[5-9].*|[1-9][0-9]*) " ..
        "if shopt -oq posix; then __cs_LV=$POSIXLY_CORRECT; __cs_LE=${POSIXLY_CORRECT@a}; set +o posix; " ..
        "IFS= read -r -N %d __cs_L; set -o posix; POSIXLY_CORRECT=$__cs_LV; " ..
        "case $__cs_LE in *x*) export POSIXLY_CORRECT;; esac; " ..
        "else IFS= read -r -N %d __cs_L; fi; eval \"$__cs_L\"; exit;; esac; fi\n"):format(#body, #body)
end

local Runner = {}
Runner.__index = Runner

-- Opens the runner on a connected session.  Returns runner | nil,
-- message, code ("connection": the session is gone; "unsupported": the
-- host cannot run it; anything else: it did not start).
-- o (optional): command (what the channel runs, default M.SHELL: a
-- become session's is sudo ... /bin/sh), preamble (bytes sent before the
-- bootstrap: sudo's password line), prompt (the preamble is sent only
-- once the command wrote this to its stderr: sudo's prompt, so a sudo
-- that does not ask never gets the password as a shell command), shell
-- (what runs each step, default the login shell).
function M.open(session, host, timeout, o)
    o = o or {}
    local sh, err, code = session:shell(o.command or M.SHELL, { timeout = timeout })
    if not sh then return nil, err, code end
    local token = crypto.random_hex(12)
    local ok
    if o.prompt then
        ok, err, code = sh:wait_stderr(o.prompt, { timeout = timeout })
        if not ok then
            sh:close()
            return nil, err .. " (waiting for sudo's password prompt)", code
        end
    end
    local body = M.BOOT .. "__cutover_session " .. token .. (o.shell and (" " .. o.shell) or "") .. "\n"
    ok, err, code = sh:send((o.preamble or "") .. M.loader(body) .. body, { timeout = timeout })
    if not ok then sh:close(); return nil, err, code end
    local line
    line, err, code = sh:recv_line(M.LINE_MAX, { timeout = timeout })
    if not line then
        local said = sh:stderr()
        sh:close()
        if code == "eof" and said ~= "" then err = err .. ": " .. said:gsub("%s+$", "") end
        return nil, err, code
    end
    local kind, rest = line:match("^" .. token .. " (%u) ?(.*)$")
    if kind == "K" then
        return setmetatable({ sh = sh, token = token, host = host, pid = tonumber(rest) }, Runner)
    end
    sh:close()
    if kind == "N" then return nil, host .. ": " .. rest, "unsupported" end
    return nil, host .. ": the remote shell did not start the session", "unsupported"
end

-- Before a request: is the runner still usable?  true | nil, message,
-- code ("eof": the remote shell ended; "connection": the session is gone).
function Runner:ready()
    if self.dead then return nil, self.host .. ": the session has ended", "eof" end
    local ok, err, code = self.sh:poll()
    if not ok then self.dead = true end
    return ok, err, code
end

-- The next line, a frame of kind (or of kind2): its rest and its kind.
function Runner:frame(kind, opts, kind2)
    local line, err, code = self.sh:recv_line(M.LINE_MAX, opts)
    if not line then return nil, err, code end
    local k, rest = line:match("^" .. self.token .. " (%u) ?(.*)$")
    if k == "N" and kind == "P" then
        -- the session could not start the step (its private folder was
        -- removed and could not be made again): it never started
        self.dead = true
        return nil, self.host .. ": " .. rest, "notstarted"
    end
    if k ~= kind and (kind2 == nil or k ~= kind2) then
        self.dead = true
        return nil, self.host .. ": the session's reply lost its place", "protocol"
    end
    return rest, k
end

local function count_lines(s)
    local n = 1
    for _ in s:gmatch("\n") do n = n + 1 end
    return n
end

-- Sends one step.  true | nil, message, code, started, maybe: a failure
-- with started false means the command's lines were not received whole,
-- so the step never started, unless maybe: some of them may have left
-- (libssh2 took bytes, or holds part of a packet it may send later), so
-- the host may yet receive the whole request.  Its stdin is piped into
-- the step as it arrives (the step starts before the last byte is in):
-- a failure while sending stdin leaves started true.  opts (for the stdin): timeout,
-- uninterruptible; a step that does not read its stdin may hold it up
-- until it ends.
function Runner:send(line, stdin, cap, opts, argv)
    stdin = stdin or ""
    self.cap = math.min(math.floor(cap), M.MAX_CAP)
    local ok, err, code, maybe = self.sh:send("X " .. count_lines(line) .. " " .. #stdin .. " " ..
        self.cap .. (argv and " A" or "") .. "\n" .. line .. "\n",
        { uninterruptible = true, stall = M.SEND_STALL })
    if not ok then self.dead = true; return nil, err, code, false, maybe end
    if stdin == "" then return true end
    ok, err, code = self.sh:send(stdin, opts or {})
    if not ok then self.dead = true; return nil, err, code, true end
    return true
end

-- After send: the step's pid.  opts: timeout, uninterruptible.
function Runner:started(opts)
    local rest, err, code = self:frame("P", opts)
    if not rest then return nil, err, code end
    return tonumber(rest)
end

-- Seconds since started_at (0 when the caller gave none).
local function since(started_at)
    return started_at and (loop.now() - started_at) or 0
end

-- After started: the result table | nil, message, code.
function Runner:result(opts, started_at)
    local rest, kind_or_err, code = self:frame("R", opts, "Z")
    if not rest then return nil, kind_or_err, code end
    local rc = rest:match("^(%d+)$")
    if not rc then
        self.dead = true
        return nil, self.host .. ": the session's reply lost its place", "protocol"
    end
    if kind_or_err == "Z" then
        return { rc = tonumber(rc), stdout = "", stderr = "", stdout_truncated = false,
                 stderr_truncated = false, duration = since(started_at) }
    end
    -- the step has ended: its bytes come at once, a Ctrl-C now only
    -- delays the stop by as long as they take.  Each stream is at most
    -- the cap and one byte more (which tells a cut stream).
    local cap = self.cap or M.MAX_CAP
    local data_opts = { timeout = 300, uninterruptible = true, max = cap + 1 }
    local out, oerr, ocode = self.sh:recv_until("\n" .. self.token .. " O\n", data_opts)
    if not out then self.dead = true; return nil, oerr, ocode end
    local errout, eerr, ecode = self.sh:recv_until("\n" .. self.token .. " E\n", data_opts)
    if not errout then self.dead = true; return nil, eerr, ecode end
    return {
        rc = tonumber(rc), stdout = out:sub(1, cap), stderr = errout:sub(1, cap),
        stdout_truncated = #out > cap, stderr_truncated = #errout > cap,
        duration = since(started_at),   -- the output's transfer included
    }
end

function Runner:close()
    if self.sh then self.sh:close() end
    self.dead = true
end

return M
