#!/usr/bin/env bash
# Start (or stop) a local Docker engine for the `docker`-marked tests.
#   scripts/docker-engine.sh start   install Debian's docker.io + busybox-static if missing, start dockerd if
#                                    no engine answers, wait (bounded) until it does; prints what it did
#   scripts/docker-engine.sh stop    stop the dockerd this script started (pid file), bounded
# Nothing is pulled: the tests build their own image from busybox-static (no registry needed).
# Exit 0 with a message when no engine can be had (tests marked `docker` then skip with that reason).
set -uo pipefail
pidfile=/tmp/deploy-compare-dockerd.pid
case "${1:-}" in
  start)
    if docker info >/dev/null 2>&1; then echo "docker engine: already running"; exit 0; fi
    if [ "$(id -u)" != 0 ]; then echo "docker engine: not running and not root: docker tests will skip"; exit 0; fi
    if ! command -v dockerd >/dev/null 2>&1 || ! command -v busybox >/dev/null 2>&1; then
      echo "docker engine: installing docker.io busybox-static"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io busybox-static) >/tmp/deploy-compare-apt.log 2>&1 \
        || { echo "docker engine: install failed (see /tmp/deploy-compare-apt.log): docker tests will skip"; exit 0; }
    fi
    nohup dockerd >/tmp/deploy-compare-dockerd.log 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 1 60); do
      if docker info >/dev/null 2>&1; then echo "docker engine: started (pid $(cat $pidfile))"; exit 0; fi
      sleep 0.5
    done
    echo "docker engine: dockerd did not answer within 30 s (log: /tmp/deploy-compare-dockerd.log): docker tests will skip"
    ;;
  stop)
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile"); rm -f "$pidfile"
    kill "$pid" 2>/dev/null || exit 0
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
