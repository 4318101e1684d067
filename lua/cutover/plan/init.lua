-- plan: saved plans.  `cutover plan` runs a playbook in check mode and
-- writes what it predicts, per host and step, with the digests of
-- everything the prediction rests on; `cutover show-plan` renders a plan
-- for review; `cutover apply` checks the digests, runs check mode again
-- to find hosts whose facts moved (stale), and runs the playbook for real
-- on the others.  See docs/plans.md.
--
-- The command line (cli.lua) parses options and hands over with a small
-- environment: prepare (cli's prepare_run), extra_vars (cli's -e parser),
-- version.
--
-- The parts: write.lua (plan), show.lua (show-plan), apply.lua (apply),
-- read.lua (a plan file read and its shape checked), binding.lua (the
-- checks that bind what show-plan shows to what apply does),
-- digests.lua, common.lua.

-- Secrets: every string written to a plan, or printed, goes through the
-- redaction module.  Required plainly: if it cannot load, no plan is
-- written at all (never one with secrets unmasked).
require("cutover.secrets.redact")

local M = {}

M.FORMAT_VERSION = require("cutover.plan.common").FORMAT_VERSION
M.collector = require("cutover.plan.digests").collector
M.files_digest = require("cutover.plan.digests").files_digest
M.plan = require("cutover.plan.write").plan
M.read = require("cutover.plan.read").read
M.show = require("cutover.plan.show").show
M.applied_record = require("cutover.plan.apply").applied_record
M.apply = require("cutover.plan.apply").apply

return M
