#!/usr/bin/env bash
# Stop the daemons started by scripts/slurm_up.sh, by the PIDs it recorded in
# /run/slurm-local/*.pid (never by process name: other daemons on the machine are not ours).
# Safe to run when nothing is up. Leaves packages, config and logs in place.
set -u
RUN=/run/slurm-local
for d in slurmd slurmctld slurmdbd mariadbd munged; do
  f="$RUN/$d.pid"
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  fi
  rm -f "$f"
  echo "slurm_down.sh: stopped $d ($pid)"
done
exit 0
