#!/usr/bin/env bash
# Run a command with the services the integration tests need: a local Apache Kafka broker
# (scripts/kafka.sh), stopped again afterwards. Prometheus and Alertmanager are started by
# the tests themselves, on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'scripts/kafka.sh down' EXIT
CIRCUITWATCH_BROKER=$(scripts/kafka.sh up | grep -o 'kafka://[0-9.]*:[0-9]*' | tail -n 1)
[ -n "$CIRCUITWATCH_BROKER" ] || { echo "error: the Kafka broker did not start" >&2; exit 1; }
export CIRCUITWATCH_BROKER
"$@"
