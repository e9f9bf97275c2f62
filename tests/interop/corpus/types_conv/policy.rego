package corpus.types_conv
import rego.v1
t := type_name(input.v)
isnum if is_number(input.v)
isstr if is_string(input.v)
fi := format_int(input.n, 16)
num := to_number(input.n)
allow if is_object(input.obj)
