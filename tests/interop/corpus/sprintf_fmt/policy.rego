package corpus.sprintf_fmt
import rego.v1
ints := sprintf("%d|%5d|%-5d|%05d|%x|%o|%b", [input.n, input.n, input.n, input.n, input.n, input.n, input.n])
floats := sprintf("%v|%.2f|%e|%g", [input.f, input.f, input.f, input.f])
strs := sprintf("%s|%q|%10s|%-10s|%.2s", [input.s, input.s, input.s, input.s, input.s])
mixed := sprintf("%v %v %v", [input.tags, input.b, input.n])
wrong := sprintf("%d %s", [input.s, input.n])
allow if sprintf("%v", [input.n]) == "1"
