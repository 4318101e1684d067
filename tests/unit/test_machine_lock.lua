-- Unit: the machine a host's connection reaches (connection.machine),
-- which the journal locks beside the inventory name (issue 10, item 19):
-- every spelling of one machine gives one key, different machines do not.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local connection = require("cutover.connection")
local sys = require("cutover.core.sys")

T.test("safety 19: address spellings of one machine give one key", function()
    local same = {
        { "localhost", "127.0.0.1", "LOCALHOST.", "127.0.0.2", "127.000.000.001", "::1", "[::1]",
          "::ffff:127.0.0.1", "0:0:0:0:0:ffff:127.0.0.1", "0:0:0:0:0:0:0:1", "db.localhost" },
        { "10.0.0.5", "::ffff:10.0.0.5", "010.0.0.5", "[::FFFF:10.0.0.5]" },
        { "Web1.Example.com", "web1.example.com." },
    }
    for _, group in ipairs(same) do
        local want = connection.normal_address(group[1])
        for _, a in ipairs(group) do
            T.eq(connection.normal_address(a), want, a .. " is " .. group[1])
        end
    end
    T.ok(connection.normal_address("10.0.0.5") ~= connection.normal_address("10.0.0.6"), "other addresses differ")
    T.ok(connection.normal_address("web1.example.com") ~= connection.normal_address("10.0.0.5"),
         "no DNS: a name is not its address")
end)

T.test("safety 19: the key holds user, address and port; local hosts are the controller", function()
    local opts = { ssh_config = "/dev/null" }
    local function m(name, vars) return connection.machine(name, vars, opts) end
    local a = m("a", { ansible_host = "localhost", ansible_user = "ops", ansible_port = 2222 })
    T.eq(a, "ops@127.0.0.1:2222", "resolved")
    T.eq(m("b", { ansible_host = "::ffff:127.0.0.1", ansible_user = "ops", ansible_port = "2222" }), a,
         "another name and spelling, the same machine")
    T.ok(m("c", { ansible_host = "localhost", ansible_user = "ops", ansible_port = 22 }) ~= a, "another port")
    T.ok(m("d", { ansible_host = "localhost", ansible_user = "root", ansible_port = 2222 }) ~= a, "another user")
    local node = (sys.uname() or {}).node
    T.eq(m("x", { ansible_connection = "local" }), "local@" .. tostring(node), "local")
    T.eq(m("localhost", {}), "local@" .. tostring(node), "localhost defaults to local")
    local via = m("e", { ansible_host = "10.0.0.5", ansible_user = "ops", cutover_proxy_jump = "jump@bastion:2200" })
    T.eq(via, "ops@10.0.0.5:22 via jump@bastion:2200", "behind a jump host: another network")
end)

T.done()
