#!/usr/bin/env bash
# Start (or stop) a local Docker engine for the `docker`-marked tests.
#   scripts/docker-engine.sh start   if no engine answers: install Debian's docker.io when dockerd is missing,
#                                    start dockerd, wait (bounded) until it answers; prints what it did
#   scripts/docker-engine.sh stop    stop the dockerd this script started (pid file), bounded
# Exit status: 0 when an engine answers (already running, or started here); 1 when none can be had (not root,
# install failed, dockerd exited or did not answer in time): the message says why and where the log is.
# A dockerd that did not come up is stopped again before the script exits. Nothing is pulled.
# For the test of the failure path (tests/test_ci_scripts.py): DEPLOY_COMPARE_DOCKERD names the daemon binary
# (default dockerd), DEPLOY_COMPARE_DOCKERD_PIDFILE its pid file, DEPLOY_COMPARE_DOCKERD_WAIT_S the wait (30).
set -uo pipefail
dockerd=${DEPLOY_COMPARE_DOCKERD:-dockerd}
pidfile=${DEPLOY_COMPARE_DOCKERD_PIDFILE:-/tmp/deploy-compare-dockerd.pid}
wait_s=${DEPLOY_COMPARE_DOCKERD_WAIT_S:-30}
log=${pidfile%.pid}.log
fail() { echo "docker engine: $*" >&2; exit 1; }
case "${1:-}" in
  start)
    if docker info >/dev/null 2>&1; then echo "docker engine: already running"; exit 0; fi
    [ "$(id -u)" = 0 ] || fail "no engine answers (docker info) and not root, so none can be started here"
    if ! command -v "$dockerd" >/dev/null 2>&1; then
      [ "$dockerd" = dockerd ] || fail "$dockerd (DEPLOY_COMPARE_DOCKERD) is not an executable"
      echo "docker engine: installing docker.io"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) \
        >/tmp/deploy-compare-apt.log 2>&1 || fail "installing docker.io failed (see /tmp/deploy-compare-apt.log)"
    fi
    nohup "$dockerd" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 $((wait_s * 2))); do
      if docker info >/dev/null 2>&1; then
        echo "$pid" > "$pidfile"
        echo "docker engine: started (pid $pid, log $log)"; exit 0
      fi
      kill -0 "$pid" 2>/dev/null || { wait "$pid"; fail "$dockerd exited with status $? before answering (log: $log)"; }
      sleep 0.5
    done
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null
    fail "$dockerd did not answer within $wait_s s and was stopped (log: $log)"
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
