package corpus.else_chain
import rego.v1
grade := "a" if { input.n > 90 } else := "b" if { input.n > 50 } else := "c"
allow if grade != "c"
sign := "neg" if input.n < 0 else := "pos"
