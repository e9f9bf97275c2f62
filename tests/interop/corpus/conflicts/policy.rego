package corpus.conflicts
import rego.v1
# Two users with one name and different ages: OPA raises a conflict error.
age[u.name] := u.age if { some u in input.users }
level := "high" if input.n > 10
level := "low" if input.n < 20
allow if not age.bob
allow_level if level == "high"
