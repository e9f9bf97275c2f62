package corpus.strings_unicode
import rego.v1
up := upper(input.t)
low := lower(input.t)
n := count(input.t)
eq_fold if lower(input.t) == lower(upper(input.t))
starts if startswith(input.t, "ß")
allow if upper(input.t) == upper(input.s)
