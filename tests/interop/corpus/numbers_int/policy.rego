package corpus.numbers_int
import rego.v1
sum := input.n + input.m
prod := input.n * input.m
quo := input.n / 4
modulo := input.n % 7
neg := 0 - input.n
big := input.n * 1000000000000
# Bounded on both sides: numbers.range(0, -9223372036854775808) runs OPA out of time and
# memory (sck stops it with evaluation_limit), which made a request time out at 200 inputs.
r := count(numbers.range(0, input.m)) if {
	input.m < 1000
	input.m > -1000
}
allow if input.n + input.m > 100
