package corpus.comprehensions
import rego.v1
doubled := [y | some x in input.nums; y := x * 2]
lens := {s: count(s) | some s in input.tags}
uniq := {t | some t in input.tags}
big := count([x | some x in input.nums; x > input.n])
allow if big > 0
