-- setup: Ansible's name for gather_facts.
local gather_facts = require("cutover.actions.gather_facts")

local setup = {}
for k, v in pairs(gather_facts) do setup[k] = v end
setup.summary = "Read the host's facts again (Ansible's name for gather_facts)"
return setup
