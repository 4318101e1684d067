-- guest: what the VM lab's tests share.  They run under `vm.sh with-vm`,
-- which boots the guest and names it in the environment.
--   local G = dofile(tests_dir .. "/vm/lib/guest.lua")(T, tests_dir)
--   G.PORT, G.KEY, G.KNOWN, G.IMAGE, G.OPS_PASSWORD (ops' sudo password)
--   G.vm(cmd [, timeout])   a command on the guest as root
--   G.serve_repo()          the lab's apt repository, the guest's only source
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")

return function(T, tests_dir)
    local G = {}
    G.PORT = assert(tonumber(os.getenv("CUTOVER_VM_PORT")), "CUTOVER_VM_PORT: run through tests/vm/lib/vm.sh with-vm")
    G.KEY = assert(os.getenv("CUTOVER_VM_KEY"))
    G.KNOWN = assert(os.getenv("CUTOVER_VM_KNOWN_HOSTS"))
    G.IMAGE = assert(os.getenv("CUTOVER_VM_IMAGE"))
    G.OPS_PASSWORD = (fs.read(G.IMAGE .. "/ops.password") or ""):gsub("%s+$", "")
    G.BOOT_SECONDS = os.getenv("CUTOVER_VM_BOOT_SECONDS") or "?"

    -- A command on the guest as root, through OpenSSH (not cutover's
    -- client): its stdout without the last newline; an error (naming the
    -- caller's line) when it fails.
    function G.vm(cmd, timeout)
        local r = assert(proc.run({ argv = { "ssh", "-p", tostring(G.PORT), "-i", G.KEY, "-o", "IdentitiesOnly=yes",
            "-o", "UserKnownHostsFile=" .. G.KNOWN, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "root@127.0.0.1", cmd }, timeout = timeout or 180 }))
        if r.rc ~= 0 then error("on the VM (" .. r.rc .. "): " .. cmd .. "\n" .. r.stdout .. r.stderr, 2) end
        return (r.stdout:gsub("\n$", ""))
    end

    -- Builds the lab's repository (repo.sh) and serves it on
    -- 127.0.0.1:CUTOVER_VM_REPO_PORT, which the guest reaches as
    -- http://10.0.2.100/, its only apt source (the watcher of the test
    -- harness stops the server with the test).
    function G.serve_repo()
        local port = assert(tonumber(os.getenv("CUTOVER_VM_REPO_PORT")), "CUTOVER_VM_REPO_PORT (vm.sh with-vm)")
        local repo = T.tmpdir() .. "/repo"
        local built = T.sh("bash " .. tests_dir .. "/vm/lib/repo.sh " .. repo .. " 2>&1")
        T.eq(built.rc, 0, "repo.sh: " .. built.stdout)
        local py = fs.stat("/usr/bin/python3") and "/usr/bin/python3" or "python3"
        T.sh(py .. " -m http.server --bind 127.0.0.1 --directory " .. repo .. " " .. port ..
             " >" .. repo .. "/../http.log 2>&1 </dev/null &")
        for _ = 1, 50 do
            if T.sh("bash -c 'exec 3<>/dev/tcp/127.0.0.1/" .. port .. "' 2>/dev/null").rc == 0 then break end
            T.sh("sleep 0.2")
        end
        G.vm("echo 'deb [trusted=yes] http://10.0.2.100/ ./' > /etc/apt/sources.list.d/cutover-lab.list; " ..
             "rm -f /etc/apt/sources.list; rm -rf /var/lib/apt/lists/*")
    end

    return G
end
