#!/usr/bin/env bash
# The compose stack for one run folder, start to finish, leaving nothing behind:
#   prepare -> torchserve (and tfserving when its image is present) -> locust master + worker, headless,
#   results in RUN_DIR/compose/ (locust CSV + HTML) and RUN_DIR/logs/compose-*.log
#   -> docker-compose down -v --remove-orphans (containers, network, volume), on every exit path.
# usage: scripts/compose-stack.sh RUN_DIR [PROJECT]     (images: make images)
# Environment: DC_TWINS (e.g. mlp; default every twin), DC_USERS, DC_RUN_TIME, DC_TS_*_PORT, DC_TFS_*_PORT (see docker-compose.yml).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 RUN_DIR [PROJECT]" >&2; exit 2; }
run_dir=$(realpath "$1")
project=${2:-deploy-compare}
[ -f "$run_dir/manifest.json" ] || { echo "$run_dir has no manifest.json: run train + export first" >&2; exit 2; }
export DC_RESULTS RUN_ID
DC_RESULTS=$(dirname "$run_dir")
RUN_ID=$(basename "$run_dir")
file="$(cd "$(dirname "$0")/.." && pwd)/docker-compose.yml"
if command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose); else compose=(docker compose); fi
compose+=(-f "$file" -p "$project")

# The toolkit containers read and write the run folder as DC_UID:DC_GID: the caller, or the images'
# unprivileged uid 1000 when the caller is root (results files are private, 0600: the run folder is
# handed to that uid; root still reads it).
if [ "$(id -u)" = 0 ]; then
  export DC_UID=${DC_UID:-1000} DC_GID=${DC_GID:-1000}
  chown -R "$DC_UID:$DC_GID" "$run_dir"
else
  export DC_UID=${DC_UID:-$(id -u)} DC_GID=${DC_GID:-$(id -g)}
fi

servers=(torchserve)
if docker image inspect tensorflow/serving:2.21.0 >/dev/null 2>&1; then
  export COMPOSE_PROFILES=tfserving
  servers+=(tfserving)
else
  echo "tfserving: not started: image tensorflow/serving:2.21.0 is not present here (enable: docker pull" \
       "tensorflow/serving:2.21.0, then rerun); the stack runs without it"
fi

cleanup() {
  "${compose[@]}" logs --no-color prepare "${servers[@]}" >"$run_dir/logs/compose-servers.log" 2>&1 || true
  "${compose[@]}" down -v --remove-orphans --timeout 20
}
trap cleanup EXIT
"${compose[@]}" up -d "${servers[@]}"   # runs `prepare` to completion first
for _ in $(seq 1 150); do   # TorchServe healthy = every model has a READY worker (bounded: 5 min)
  status=$(docker inspect -f '{{.State.Health.Status}}' "$("${compose[@]}" ps -q torchserve)")
  [ "$status" = healthy ] && break
  [ "$status" = unhealthy ] && { echo "torchserve: unhealthy (see $run_dir/logs/compose-servers.log)" >&2; exit 1; }
  sleep 2
done
[ "$status" = healthy ] || { echo "torchserve: not healthy after 300 s" >&2; exit 1; }
rc=0
"${compose[@]}" up --no-deps --no-color --exit-code-from locust-master locust-master locust-worker \
  >"$run_dir/logs/compose-locust.log" 2>&1 || rc=$?
tail -n 25 "$run_dir/logs/compose-locust.log"
echo "locust exit code $rc; results: $run_dir/compose/locust_stats.csv, $run_dir/compose/locust.html"
exit $rc
