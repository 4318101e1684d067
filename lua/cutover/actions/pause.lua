-- pause: an approval gate.  The decision (asked now, approved in advance,
-- or parked until someone approves) is the runner's: ctx.gate.
return {
    summary = "Stop at an approval gate until an operator approves (or answers)",
    description = [[
`gate` names the gate (unique in its file).  A gate in an imported or
included file or a role is named under that import's id, as its step
is (`first.go`): one file brought in twice has two gates, approved one
at a time.  On a terminal the
operator is asked `prompt` (one host at a time, naming the host): a plain
gate needs "yes"; with `choices` the answer must be one of them; with
`secret: true` the answer is typed without echo and masked everywhere.
Without a terminal, or with --non-interactive, the host parks at the gate:
the run records it, other hosts go on to their own gates, and cutover
exits with code 4 printing how to continue (`cutover resume RUN --approve
GATE`, `--approve GATE@HOST`, `--answer GATE=VALUE`, `--answer-stdin
GATE`).  `--approve GATE` on `run` approves it in advance.  Every
approval is recorded (gate, host, OS user, time) and shown by `cutover
show`.  The registered result holds `answer`.]],
    args = {
        gate = { type = "string", required = true,
            doc = "the gate's name (unique in its file; under the import's id in an imported file or role)" },
        prompt = { type = "string", default = "Continue?", doc = "what the operator is asked" },
        choices = { type = "list", doc = "the answers allowed" },
        secret = { type = "bool", default = false, doc = "the answer is secret: no echo, masked" },
    },
    returns = {
        approved = "true once approved", answer = "the answer (masked in all output when secret)",
        approved_by = "OS user who approved", gate = "the gate's name",
    },
    check_mode = "Unknowable: a dry run never stops at a gate; the steps after it are decided at apply time.",
    idempotent = true,
    run = function(ctx, args)
        if ctx.check then
            return { unknown = true, msg = "would stop at gate '" .. (ctx.gate_id or args.gate) .. "': " ..
                args.prompt }
        end
        return ctx.gate(args)
    end,
}
