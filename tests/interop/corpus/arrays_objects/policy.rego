package corpus.arrays_objects
import rego.v1
head := array.slice(input.tags, 0, input.i)
tail := array.slice(input.tags, input.i, count(input.tags))
negative := array.slice(input.tags, -1, input.i)
reversed := array.reverse(input.tags)
got := object.get(input.obj, "a", "none")
deep := object.get(input.obj, ["a", "b"], "none")
path_got := object.get(input.obj, [input.t], 0)
merged := object.union_n([input.obj, {"z": input.i}, {"a": input.s}])
union := object.union(input.obj, {"b": input.n})
keys := object.keys(input.obj)
removed := object.remove(input.obj, ["a", input.t])
filtered := object.filter(input.obj, ["a", "z"])
allow if {
	count(array.slice(input.tags, 0, 2)) == 2
	object.get(input.obj, "a", null) != null
}
