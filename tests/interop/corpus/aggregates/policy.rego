package corpus.aggregates
import rego.v1
total := sum(input.nums)
biggest := max(input.nums)
smallest := min(input.nums)
sorted := sort(input.nums)
n := count(input.nums)
prod := product(input.nums)
allow if sum(input.nums) > 10
