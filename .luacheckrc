-- Lua 5.4 everywhere; busted's globals in the specs.
std = "lua54"
exclude_files = { "spec/fixtures/syntax_error.lua" }
files["spec"] = { std = "+busted" }
