#!/bin/sh
# A legacy-style workload, the kind that expects a VM: it daemonizes a worker
# (double fork, reparented to PID 1), leaves short-lived orphans behind, logs
# through syslog when it can, and needs a moment to shut down cleanly.
log() { echo "legacy-app: $*"; logger -t legacy-app "$*" 2>/dev/null || true; }

setsid sh -c 'trap "echo worker: flushing; exit 0" TERM; while true; do sleep 1; done' &
log "worker daemon started"

trap 'log "TERM received: closing"; sleep 0.3; log "bye"; exit 0' TERM
n=0
while true; do
  (sleep 0.1 &)            # an orphan every round: PID 1 must reap it
  n=$((n + 1))
  if [ $((n % 10)) -eq 0 ]; then
    log "round $n, zombies: $(ps -o stat | grep -c '^Z')"
  fi
  sleep 0.2
done
