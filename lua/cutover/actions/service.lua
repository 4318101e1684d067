-- service: Ansible's name for the systemd action (systemd hosts only).
local systemd = require("cutover.actions.systemd")

local service = {}
for k, v in pairs(systemd) do service[k] = v end
service.summary = "The systemd action under Ansible's other name (systemd hosts only)"
return service
