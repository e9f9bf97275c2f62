package corpus.undefined_false
import rego.v1
maybe if input.b
not_maybe if not maybe
missing_field if input.nothing.deeper == 1
negated if not missing_field
explicit_false := input.b == true
allow if not_maybe
