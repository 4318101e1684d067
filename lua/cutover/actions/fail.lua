-- fail: stops the host with a message.
return {
    summary = "Fail the host with a message",
    description = "Always fails; use with `when:` to stop a host for a reason you state.",
    free_form = "msg",
    args = { msg = { type = "string", default = "failed as requested", doc = "the reason" } },
    returns = { msg = "the reason" },
    check_mode = "Runs as usual: fails in check mode too.",
    controller = true,
    read_only = true,
    -- safe to run again after a restart: it converges, or only reads
    idempotent = true,
    run = function(_, args)
        return { failed = true, msg = args.msg }
    end,
}
