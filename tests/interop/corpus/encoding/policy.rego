package corpus.encoding
import rego.v1
b64 := base64.encode(input.s)
b64d := base64.decode(base64.encode(input.s))
url := base64url.encode(input.s)
hexed := hex.encode(input.s)
q := urlquery.encode(input.s)
obj := urlquery.encode_object({"k": input.s})
allow if b64d == input.s
