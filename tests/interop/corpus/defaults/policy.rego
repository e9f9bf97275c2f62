package corpus.defaults
import rego.v1
default allow := false
allow if input.b
default limit := 10
limit := input.n if input.n > 10
default label := "none"
label := input.s if startswith(input.s, "a")
