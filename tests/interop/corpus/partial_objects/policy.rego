package corpus.partial_objects
import rego.v1
by_name[u.name] := u.age if { some u in input.users }
flags[k] := true if { some k in input.tags }
allow if by_name.alice > 17
