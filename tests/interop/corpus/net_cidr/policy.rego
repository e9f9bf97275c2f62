package corpus.net_cidr
import rego.v1
inside if net.cidr_contains("10.0.0.0/8", input.ip)
in_v6 if net.cidr_contains("fd00::/8", input.ip)
is_valid := net.cidr_is_valid(input.cidr)
expanded := count(net.cidr_expand(input.cidr)) if net.cidr_is_valid(input.cidr)
allow if inside
