package corpus.objects_builtins
import rego.v1
got := object.get(input.obj, "a", "missing")
deep := object.get(input.obj, ["a", "b"], 0)
keys := object.keys(input.obj)
removed := object.remove(input.obj, ["a"])
union := object.union(input.obj, {"z": 1})
filtered := object.filter(input.obj, ["a", "z"])
sub if object.subset(input.obj, {"a": 1})
allow if sub
