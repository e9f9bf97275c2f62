package corpus.json_builtins
import rego.v1
m := json.marshal(input.obj)
back := json.unmarshal(json.marshal(input.obj))
valid := json.is_valid(input.s)
filt := json.filter(input.obj, ["a/b"])
rem := json.remove(input.obj, ["a"])
patched := json.patch(input.obj, [{"op": "add", "path": "/new", "value": input.n}])
allow if back == input.obj
