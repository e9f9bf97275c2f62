package corpus.time_builtins
import rego.v1
parsed := time.parse_rfc3339_ns(input.ts)
date := time.date(input.ts_ns)
clock := time.clock(input.ts_ns)
wd := time.weekday(input.ts_ns)
added := time.add_date(input.ts_ns, 0, 1, 0)
fixed_now := n if { n := time.now_ns() with time.now_ns as input.ts_ns }
diff := time.diff(input.ts_ns, 0)
allow if time.parse_rfc3339_ns(input.ts) < input.ts_ns
