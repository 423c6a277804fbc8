"""`token-broker-admin`: the operator's commands, with the broker's own profile parser, token endpoint
client and cache key; `cli` is the entry point."""
