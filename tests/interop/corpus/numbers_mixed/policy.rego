package corpus.numbers_mixed
import rego.v1
added := input.x + input.y
subtracted := input.x - input.n
times := input.x * input.y
quot := input.y / input.x
mod := input.n % input.m
avg := sum(input.nums) / count(input.nums)
total := sum([input.x, input.y, input.n])
prod := product([input.x, input.y])
scaled := [v | some e in input.nums; v := e * input.x]
exact if input.x + input.y == 0.3
above if (input.x * 10) - input.y > 1
shown := sprintf("%v %v", [input.x + input.y, input.x * 3])
fmt_int := format_int(input.x * 100, 16)
allow if {
	input.x * input.y >= 0.25
	input.n - input.x < 100
}
