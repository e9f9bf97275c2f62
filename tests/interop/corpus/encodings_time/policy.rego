package corpus.encodings_time
import rego.v1
b64 := base64.encode(input.s)
b64_back := base64.decode(base64.encode(input.s))
b64url := base64url.encode_no_pad(input.s)
b64_ok := base64.is_valid(input.t)
hexed := hex.encode(input.s)
unhexed := hex.decode(input.t)
query := urlquery.encode(input.s)
query_obj := urlquery.encode_object({"q": input.s, "t": input.t})
unquery := urlquery.decode(input.t)
ns := time.parse_rfc3339_ns(input.ts)
later := time.add_date(time.parse_rfc3339_ns("2024-01-31T00:00:00Z"), 0, input.i, 0)
later_date := time.date(later)
diff := time.diff(time.parse_rfc3339_ns("2024-02-29T12:30:00Z"), input.ts_ns)
weekday := time.weekday(input.ts_ns)
clock := time.clock([input.ts_ns, "UTC"])
allow if {
	time.add_date(input.ts_ns, 1, 0, 0) > input.ts_ns
	base64.decode(base64.encode(input.s)) == input.s
}
