#!/usr/bin/env bash
# What email authentication costs in throughput: see bench/throughput.sh.
exec "$(dirname "$0")/throughput.sh" --compare auth "$@"
