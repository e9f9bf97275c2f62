package corpus.functions
import rego.v1
clamp(x, lo, hi) := lo if x < lo
clamp(x, lo, hi) := hi if x > hi
clamp(x, lo, hi) := x if { x >= lo; x <= hi }
greet(name) := concat(" ", ["hello", name])
c := clamp(input.n, 0, 100)
g := greet(input.s)
allow if c == input.n
