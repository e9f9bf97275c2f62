package corpus.glob_match
import rego.v1
host if glob.match("*.example.com", ["."], input.s)
host_any if glob.match("*.example.com", [], input.s)
path if glob.match("/api/**", ["/"], input.path)
q if glob.match("a?c", [], input.s)
cls if glob.match("[a-c]*", [], input.s)
allow if host
