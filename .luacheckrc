-- luacheck settings for cutover (run by scripts/lint.sh, first in scripts/test.sh)
std = "lua54"
max_line_length = 120
-- Methods that implement an interface (connections, reporters) keep their
-- receiver even where one implementation has no use for it.
self = false
-- An empty branch with a comment names a case that is accepted on purpose
-- (a blank inventory line, a YAML null that means "nothing").
ignore = { "542" }
