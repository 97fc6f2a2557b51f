#!/usr/bin/env bash
# Run a command as on a fresh machine without the optional tools: Docker (engine, CLI, docker-compose), wrk,
# h2load, chromium and busybox are hidden from PATH (a temporary folder of links to everything else on PATH),
# and DOCKER_HOST points at a socket nothing listens on, so the Docker SDK finds no engine either.
#   scripts/hide-tools.sh .venv/bin/python -m pytest tests/test_serving_compose.py
# Nothing is uninstalled or stopped. The tests that depend on a hidden tool must then skip with their reason,
# and those with a no-tool fallback (the compose file's variable substitution) must pass through it.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
HIDDEN=" docker dockerd docker-compose wrk h2load chromium busybox "
links=$(mktemp -d /tmp/deploy-compare-hidden-tools-XXXXXX)
trap 'rm -rf "$links"' EXIT
IFS=: read -ra dirs <<< "$PATH"
for d in "${dirs[@]}"; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    name=${f##*/}
    [ -f "$f" ] && [ -x "$f" ] || continue
    [ -e "$links/$name" ] && continue  # the first on PATH wins, as in a lookup
    case "$HIDDEN" in *" $name "*) continue ;; esac
    ln -s "$f" "$links/$name"
  done
done
status=0
PATH="$links" DOCKER_HOST="unix://$links/no-docker-engine.sock" "$@" || status=$?
exit $status
