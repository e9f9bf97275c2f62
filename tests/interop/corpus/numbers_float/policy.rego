package corpus.numbers_float
import rego.v1
half := input.f / 2
rounded := round(input.f)
fl := floor(input.f)
ce := ceil(input.f)
ab := abs(input.f)
cmp if input.f > 0.5
to_n := to_number(input.s)
allow if input.f * 2 > 1
