package corpus.regex_builtins
import rego.v1
digits if regex.match(`^\d+$`, input.s)
words if regex.match(`^\w+$`, input.t)
spaces := regex.split(`\s+`, input.s)
found := regex.find_n(`[a-z]\d`, input.s, -1)
replaced := regex.replace(input.s, `\d`, "#")
tm := regex.template_match("urn:foo:{.*}", input.s, "{", "}")
valid := regex.is_valid(input.s)
allow if digits
