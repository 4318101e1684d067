-- gather_facts (also `setup`, Ansible's name): reads the host's facts
-- again, in the middle of a play.  The play's own gathering happens once,
-- before its first step; after a reboot into a new kernel, or a package
-- upgrade that changed the release, this step makes `facts` say so.
local facts = require("cutover.facts")

return {
    summary = "Read the host's facts again (after a reboot or an upgrade)",
    description = [[
Gathers the host's facts as the start of a play does (`docs/facts.md`), in
one round trip, and replaces `facts` (and `ansible_facts`, and the
`ansible_X` names) for the rest of the host's run.  The result lists the
facts whose value changed (`changed_facts`: after a reboot, `boot_id`,
`uptime_seconds` and maybe `kernel`); the step itself is never a change,
since it only reads.  The new facts are kept in the journal, as the
play's first gathering is.  `setup` is the same action.]],
    args = {
        gather_subset = { type = "list", scalar_ok = true,
                          doc = "all (the default), min, hardware, network, or !hardware / !network" },
    },
    validate = function(args)
        local _, err = facts.resolve_subset(args.gather_subset)
        return err
    end,
    returns = {
        gathered = "the subsets read",
        changed_facts = "the names of the facts whose value is not what it was (sorted)",
    },
    check_mode = "Runs as usual: it only reads the host (after a reboot or another step check mode cannot know, the result is unknown).",
    read_only = true,
    idempotent = true,
    run = function(ctx, args)
        if ctx.delegated_to then
            return { failed = true, msg = "gather_facts reads the host the step runs for; it cannot be delegated" }
        end
        if not ctx.refresh_facts then
            return { failed = true, msg = "gather_facts: this connection has no facts to read" }
        end
        return ctx.refresh_facts(args.gather_subset)
    end,
}
