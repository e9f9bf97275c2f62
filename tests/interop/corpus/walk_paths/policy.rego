package corpus.walk_paths
import rego.v1
paths := [p | walk(input.obj, [p, _])]
leaves := count([v | walk(input.obj, [_, v]); not is_object(v)])
allow if leaves > 1
