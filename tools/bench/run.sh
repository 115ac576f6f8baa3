#!/bin/sh
# Compares mxd with Postfix's smtp-sink and a throwaway Postfix under the
# same SMTP load; see docs/benchmarks.md. Flags go to the bench program
# (tools/bench/run.sh -h lists them). Everything it starts runs on
# 127.0.0.1 under a temporary directory and is stopped when it exits.
# A tool of the repository: nothing here is installed on an MX host.
set -eu
cd "$(dirname "$0")/../.."
for tool in smtp-sink postfix redis-server go; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "bench: $tool not found (apt-get install postfix redis-server)" >&2
		exit 1
	}
done
bin=$(mktemp -d "${TMPDIR:-/tmp}/mxq-bench-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/bench" ./tools/bench
# The bench program stops what it started when it gets INT, TERM or HUP;
# pass them on, and wait until it has cleaned up.
"$bin/bench" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || :' INT TERM HUP
status=0
while :; do
	if wait "$pid"; then status=0; else status=$?; fi
	kill -0 "$pid" 2>/dev/null || break
done
exit "$status"
