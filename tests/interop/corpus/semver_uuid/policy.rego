package corpus.semver_uuid
import rego.v1
valid := semver.is_valid(input.ver)
cmp := semver.compare(input.ver, "1.2.3") if semver.is_valid(input.ver)
allow if semver.compare(input.ver, "1.0.0") >= 0
