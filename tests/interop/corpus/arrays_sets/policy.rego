package corpus.arrays_sets
import rego.v1
cat := array.concat(input.nums, [1])
sl := array.slice(input.nums, 1, 3)
rv := array.reverse(input.nums)
s1 := {x | some x in input.tags}
inter := s1 & {"a", "b"}
uni := s1 | {"z"}
diff := s1 - {"a"}
allow if "a" in s1
