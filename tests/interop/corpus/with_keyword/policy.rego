package corpus.with_keyword
import rego.v1
base if input.b
flipped if base with input.b as true
now_year := time.date(time.now_ns())[0]
fixed_year := y if { y := now_year with time.now_ns as input.ts_ns }
allow if flipped
