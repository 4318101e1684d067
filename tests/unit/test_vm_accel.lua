-- The VM lab's choice of accelerator (tests/vm/lib/vm.sh accel): KVM only
-- when a guest kernel really runs under it.  On this machine /dev/kvm
-- opens, qemu starts, and the guest hangs at its first instruction; the
-- lab used to pick KVM and every VM test failed after 120 s.  Here a fake
-- qemu-system-x86_64 first in PATH plays each kind of host: a working KVM
-- (prints the kernel's banner), a hanging one, one where qemu aborts; the
-- device is /dev/null (a writable character device) or a missing path.
local binary, tests_dir = ...
local T = dofile(tests_dir .. "/lib/testlib.lua").setup(binary, tests_dir)
local proc = require("cutover.core.proc")
local fs = require("cutover.core.fs")

local VM_SH = tests_dir .. "/vm/lib/vm.sh"

local FAKE_QEMU = [[#!/bin/sh
# records each start, then plays $FAKE_QEMU_MODE on the -serial file
echo "start $*" >> "$FAKE_QEMU_LOG"
serial=
while [ $# -gt 0 ]; do
    case $1 in -serial) serial=${2#file:}; shift ;; esac
    shift
done
case $FAKE_QEMU_MODE in
banner) sleep 0.5; echo "Linux version 6.1.0-fake (probe)" > "$serial"; exec sleep 30 ;;
hang)   echo $$ > "$FAKE_QEMU_LOG.pid"; : > "$serial"; exec sleep 30 ;;
abort)  echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2; exit 134 ;;
esac
]]

-- a cache root with an image folder in it, and the fake qemu's folder
local function setup()
    local dir = T.tmpdir()
    assert(fs.mkdir(dir .. "/bin", 448))
    T.write(dir .. "/bin/qemu-system-x86_64", FAKE_QEMU, 493)
    assert(fs.mkdir(dir .. "/cache", 448))
    assert(fs.mkdir(dir .. "/cache/0123456789abcdef", 448))
    return dir
end

local function accel(dir, env)
    local e = { PATH = dir .. "/bin:/usr/bin:/bin", FAKE_QEMU_LOG = dir .. "/qemu.log",
                CUTOVER_VM_KVM_DEVICE = "/dev/null", CUTOVER_VM_KVM_PROBE = "3" }
    for k, v in pairs(env or {}) do e[k] = v or nil end
    return assert(proc.run({ argv = { "bash", VM_SH, "accel", dir .. "/cache/0123456789abcdef" },
                             env = e, timeout = 60 }))
end

local function starts(dir)
    local log = T.read(dir .. "/qemu.log") or ""
    local n = 0
    for _ in log:gmatch("start ") do n = n + 1 end
    return n, log
end

local function verdict_files(dir)
    local names = {}
    for _, name in ipairs(assert(fs.list(dir .. "/cache"))) do
        if name:match("^%.accel%-") then names[#names + 1] = name end
    end
    return names
end

-- A second call (the next VM test of the run) gives the kept verdict
-- without probing again, whatever KVM would do now.
local function check_kept(dir, mode, want)
    local r = accel(dir, { FAKE_QEMU_MODE = mode })
    T.eq(r.stdout, want .. "\n", "kept verdict")
    T.eq((starts(dir)), 1, "no second probe")
end

T.test("a KVM that runs the kernel: kvm, probed once per boot of the machine", function()
    local dir = setup()
    local r = accel(dir, { FAKE_QEMU_MODE = "banner" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(r.stdout, "kvm\n", "verdict")
    local n, log = starts(dir)
    T.eq(n, 1, "one probe start")
    T.contains(log, "-accel kvm", "the probe asks for KVM")
    T.contains(log, "/cache/0123456789abcdef/vmlinuz", "the probe boots the image's own kernel")
    local files = verdict_files(dir)
    T.eq(#files, 1, "the verdict is kept")
    local boot = (T.read("/proc/sys/kernel/random/boot_id") or "unknown"):gsub("%s+$", "")
    T.eq(files[1], ".accel-0123456789abcdef-" .. boot, "kept for this image and this boot")
    check_kept(dir, "hang", "kvm")
end)

T.test("a KVM whose guest prints nothing: tcg after the probe's bound, and it says why", function()
    local dir = setup()
    local r = accel(dir, { FAKE_QEMU_MODE = "hang" })
    T.eq(r.rc, 0, r.stderr)
    T.eq(r.stdout, "tcg\n", "verdict")
    T.contains(r.stderr, "printed nothing under it in 3 s", "why")
    T.contains(r.stderr, "CUTOVER_VM_ACCEL=kvm", "how to force it")
    -- the hung probe is killed, not left running
    local pid = (T.read(dir .. "/qemu.log.pid") or ""):gsub("%s+$", "")
    T.ok(pid ~= "", "the fake recorded its pid")
    T.eq(proc.run({ argv = { "kill", "-0", pid } }).rc ~= 0, true, "the hung probe is gone")
    check_kept(dir, "banner", "tcg")
end)

T.test("qemu aborts under KVM: tcg at once, with qemu's own error", function()
    local dir = setup()
    local r = accel(dir, { FAKE_QEMU_MODE = "abort", CUTOVER_VM_KVM_PROBE = "60" })
    T.eq(r.stdout, "tcg\n", "verdict")
    T.contains(r.stderr, "failed to set MSR", "qemu's error is shown")
    T.eq(#verdict_files(dir), 1, "the verdict is kept")
end)

T.test("a damaged verdict file is probed again; a probe bound that is not a number is refused", function()
    local dir = setup()
    T.eq(accel(dir, { FAKE_QEMU_MODE = "banner" }).stdout, "kvm\n", "first probe")
    local file = dir .. "/cache/" .. verdict_files(dir)[1]
    T.write(file, "")
    T.eq(accel(dir, { FAKE_QEMU_MODE = "hang" }).stdout, "tcg\n", "an empty verdict: probed again")
    T.write(file, "hvf\n")
    T.eq(accel(dir, { FAKE_QEMU_MODE = "banner" }).stdout, "kvm\n", "a verdict that is neither: probed again")
    T.eq((starts(dir)), 3, "three probes")
    local r = accel(dir, { CUTOVER_VM_KVM_PROBE = "soon" })
    T.ok(r.rc ~= 0, "refused")
    T.contains(r.stderr, "CUTOVER_VM_KVM_PROBE must be a whole number of seconds, not 'soon'", "and named")
end)

T.test("no usable device, or the choice forced: no probe", function()
    local dir = setup()
    local r = accel(dir, { FAKE_QEMU_MODE = "banner", CUTOVER_VM_KVM_DEVICE = dir .. "/no-such-device" })
    T.eq(r.stdout, "tcg\n", "no device")
    r = accel(dir, { FAKE_QEMU_MODE = "banner", CUTOVER_VM_KVM_DEVICE = dir .. "/cache" })
    T.eq(r.stdout, "tcg\n", "not a character device")
    r = accel(dir, { FAKE_QEMU_MODE = "hang", CUTOVER_VM_ACCEL = "kvm" })
    T.eq(r.stdout, "kvm\n", "forced kvm")
    r = accel(dir, { FAKE_QEMU_MODE = "banner", CUTOVER_VM_ACCEL = "tcg" })
    T.eq(r.stdout, "tcg\n", "forced tcg")
    T.eq((starts(dir)), 0, "qemu never started")
    T.eq(#verdict_files(dir), 0, "nothing kept")
    r = accel(dir, { CUTOVER_VM_ACCEL = "hvf" })
    T.ok(r.rc ~= 0, "an unknown accelerator is refused")
    T.contains(r.stderr, "CUTOVER_VM_ACCEL must be kvm or tcg, not 'hvf'", "and named")
end)

T.done()
