-- luacheck settings for cutover (run by scripts/lint.sh, first in scripts/test.sh)
std = "lua54"
max_line_length = 120
-- Methods that implement an interface (connections, reporters) keep their
-- receiver even where one implementation has no use for it.
self = false
-- An empty branch with a comment names a case that is accepted on purpose
-- (a blank inventory line, a YAML null that means "nothing").
ignore = { "542" }
-- Tests: a call's results are often unpacked into names that a later case
-- reads and an earlier one does not (r, res = run(...)); that is not a bug.
-- Test data in long strings (playbooks, tool output) keeps its own lines.
files["tests/"] = { ignore = { "311", "312", "542" }, max_string_line_length = false }
