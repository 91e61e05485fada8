#!/usr/bin/env bash
# What 1000 mail-flow rules per tenant cost in throughput: see bench/throughput.sh.
exec "$(dirname "$0")/throughput.sh" --compare rules "$@"
