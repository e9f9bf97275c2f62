package corpus.partial_sets
import rego.v1
names contains n if { some u in input.users; n := u.name }
names contains "root" if input.b
admins contains u.name if { some u in input.users; u.admin == true }
allow if count(admins) > 0
