#!/usr/bin/env bash
# Fail if a committed generated artifact (alert rules, Alertmanager config, dashboards)
# differs from what the code builds: the code is the source, the files are its output.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/circuitwatch alerts build --check
.venv/bin/circuitwatch dashboards build --check
