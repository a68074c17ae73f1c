#!/usr/bin/env bash
# Run a command with the services the integration tests need (a local Kafka broker), stopping them after.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/kafka.sh ]; then
  scripts/kafka.sh up
  trap 'scripts/kafka.sh down' EXIT
  CIRCUITWATCH_BROKER=$(scripts/kafka.sh url)
  export CIRCUITWATCH_BROKER
fi
"$@"
