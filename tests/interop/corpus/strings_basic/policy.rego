package corpus.strings_basic
import rego.v1
up := upper(input.s)
low := lower(input.s)
cat := concat("-", input.tags)
rep := replace(input.s, "a", "ö")
parts := split(input.s, "b")
trimmed := trim(input.s, "a")
sub := substring(input.s, 1, 3)
idx := indexof(input.s, "b")
rev := strings.reverse(input.s)
allow if contains(input.s, "a")
