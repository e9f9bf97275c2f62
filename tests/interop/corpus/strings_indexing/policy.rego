package corpus.strings_indexing
import rego.v1
len := count(input.s)
sub := substring(input.s, input.i, 2)
sub_rest := substring(input.s, input.i, -1)
at := indexof(input.s, input.t)
all_at := indexof_n(input.s, input.t)
rev := strings.reverse(input.s)
parts := split(input.s, input.t)
chars := split(input.s, "")
width := sprintf("[%6s|%-4s|%.1s]", [input.s, input.t, input.s])
trimmed := trim(input.s, input.t)
left := trim_left(input.s, input.t)
right := trim_right(input.s, input.t)
no_prefix := trim_prefix(input.s, input.t)
no_suffix := trim_suffix(input.s, input.t)
spaces := trim_space(input.s)
replaced := replace(input.s, input.t, "_")
allow if {
	count(input.s) > input.i
	startswith(input.s, substring(input.s, 0, 1))
}
