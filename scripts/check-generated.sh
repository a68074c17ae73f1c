#!/usr/bin/env bash
# Regenerate every generated artifact and fail if the committed copy differs.
set -euo pipefail
cd "$(dirname "$0")/.."
CW=.venv/bin/circuitwatch
generated=()
if $CW --help | grep -q '^  alerts'; then $CW alerts build >/dev/null; generated+=(alerts); fi
if $CW --help | grep -q '^  dashboards'; then $CW dashboards build >/dev/null; generated+=(dashboards); fi
if [ ${#generated[@]} -eq 0 ]; then echo "no generated artifacts yet"; exit 0; fi
if ! git diff --exit-code --stat -- "${generated[@]}"; then
  echo "error: generated files differ from the code that builds them; run the build and commit" >&2
  exit 1
fi
echo "generated files up to date: ${generated[*]}"
