package corpus.units_parse
import rego.v1
bytes := units.parse_bytes(input.u)
val := units.parse(input.u)
allow if units.parse_bytes(input.u) > 1000000
