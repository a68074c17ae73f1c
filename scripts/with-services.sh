#!/usr/bin/env bash
# Run a command with the services the integration tests need: a local Apache Kafka broker
# (scripts/kafka.sh), stopped again afterwards. Prometheus and Alertmanager are started by
# the tests themselves, on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
CIRCUITWATCH_BROKER=$(scripts/kafka.sh up)
export CIRCUITWATCH_BROKER
trap 'scripts/kafka.sh down' EXIT
"$@"
