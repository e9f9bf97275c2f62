package corpus.some_every
import rego.v1
any_admin if { some r in input.roles; r == "admin" }
all_short if { every s in input.tags { count(s) < 4 } }
pairs contains [i, x] if { some i, x in input.tags }
allow if { any_admin; all_short }
