#!/usr/bin/env python3
"""Records OPA's arithmetic for generated operands into tests/interop/fixtures/arith.json.

Run with both OPA majors (needs the real binaries, so it is not part of `make test`):

    python3 tests/interop/record_arith.py ../shared/bin/opa-0.60 ../shared/bin/opa-1.9

Each case is an operator (`+ - * / %`, `sum`, `product`) on operands written as sck receives
them: integers, and decimals that are the shortest text of a double. OPA's answer is
`json.marshal` of the result (its exact decimal text, not the double its JSON output rounds
to), or null when OPA has none (an error, which OPA leaves undefined). The bundler's unit
tests (`builtins::arith`) check sck against every case.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

POLICY = """package arith
import rego.v1

calc(c) := x if { c.op == "+"; x := c.a + c.b }
calc(c) := x if { c.op == "-"; x := c.a - c.b }
calc(c) := x if { c.op == "*"; x := c.a * c.b }
calc(c) := x if { c.op == "/"; x := c.a / c.b }
calc(c) := x if { c.op == "%"; x := c.a % c.b }
calc(c) := x if { c.op == "sum"; x := sum(c.items) }
calc(c) := x if { c.op == "product"; x := product(c.items) }

results := {sprintf("%d", [i]): r | some i, c in input.cases; r := json.marshal(calc(c))}
"""

FIXED = [
    "0", "1", "-1", "2", "3", "7", "10", "100", "400000", "1000000", "2147483647", "2147483648",
    "-2147483649", "9007199254740993", "9223372036854775807", "-9223372036854775808",
    "18446744073709551615", "0.1", "0.2", "0.3", "0.5", "1.5", "2.5", "-2.5", "0.25", "3.14159",
    "1e-07", "1e+21", "1e+300", "1e-300", "1.7976931348623157e+308", "5e-324", "123456789.0",
    "0.30000000000000004", "100.25", "2.0", "-0.0", "1e+22", "1e+23", "0.001", "33.333",
]


def number(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(FIXED)
    if kind == 1:
        return str(rng.randrange(-1000, 1001))
    if kind == 2:
        return repr(rng.randrange(-10**6, 10**6) / rng.choice([1, 2, 4, 8, 10, 100, 1000, 3, 7]))
    if kind == 3:
        return repr(rng.uniform(-1, 1) * 10 ** rng.randrange(-30, 31))
    if kind == 4:
        return repr(float(f"{rng.randrange(1, 10**rng.randrange(1, 17))}e{rng.randrange(-20, 21)}"))
    return str(rng.randrange(-(2**63), 2**63))


def cases(n, seed=15):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        op = rng.choice(["+", "-", "*", "/", "%", "+", "*", "/", "sum", "product"])
        if op in ("sum", "product"):
            out.append({"op": op, "items": [number(rng) for _ in range(rng.randrange(0, 5))]})
        else:
            out.append({"op": op, "a": number(rng), "b": number(rng)})
    return out


def as_json(case):
    """The case as OPA's input: operands are JSON numbers written exactly as generated."""
    if "items" in case:
        return '{"op": "%s", "items": [%s]}' % (case["op"], ", ".join(case["items"]))
    return '{"op": "%s", "a": %s, "b": %s}' % (case["op"], case["a"], case["b"])


def record(opa, generated, scratch):
    policy = os.path.join(scratch, "arith.rego")
    with open(policy, "w") as f:
        f.write(POLICY)
    data = os.path.join(scratch, "input.json")
    with open(data, "w") as f:
        f.write('{"cases": [%s]}' % ", ".join(as_json(c) for c in generated))
    out = subprocess.run(
        [opa, "eval", "--format", "json", "-d", policy, "-i", data, "data.arith.results"],
        check=True, capture_output=True, text=True,
    )
    results = json.loads(out.stdout)["result"][0]["expressions"][0]["value"]
    return [results.get(str(i)) for i in range(len(generated))]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    generated = cases(3000)
    with tempfile.TemporaryDirectory() as scratch:
        old = record(sys.argv[1], generated, scratch)
        new = record(sys.argv[2], generated, scratch)
    for case, a, b in zip(generated, old, new):
        case["opa_0_60"] = a
        case["opa_1_9"] = b
    target = os.path.join(os.path.dirname(__file__), "fixtures", "arith.json")
    with open(target, "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in generated) + "\n]\n")
    print(f"{len(generated)} cases, {sum(a != b for a, b in zip(old, new))} where the majors differ")


if __name__ == "__main__":
    main()
