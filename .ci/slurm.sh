#!/usr/bin/env bash
# CI helper: install SLURM (Debian packages) and bring up the local single-node cluster with
# one fake GPU, so that `pytest -m slurm` runs tests/test_slurm.py for real.
#
#   bash .ci/slurm.sh up      # install if needed, start munged + slurmctld + slurmd
#   bash .ci/slurm.sh down    # stop them again (by PID)
#
# In .ci/run:   trap 'bash .ci/slurm.sh down' EXIT
#               bash .ci/slurm.sh up
#               python -m pytest -m slurm
# The Python side (snakemake-executor-plugin-slurm) comes from pyproject's `workflow` extra.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-up}" in
  up)
    if [ "$(id -u)" != 0 ]; then
      echo ".ci/slurm.sh: needs root (apt-get, SlurmUser=root); the slurm tests will fail" >&2
      exit 1
    fi
    # bounded: a stuck apt or daemon start must not hang CI (a bare machine takes ~10 s)
    FAKE_GPUS=${FAKE_GPUS:-1} timeout -k 10 300 bash scripts/slurm_up.sh
    ;;
  down)
    timeout -k 10 120 bash scripts/slurm_down.sh
    ;;
  *)
    echo "usage: bash .ci/slurm.sh [up|down]" >&2
    exit 2
    ;;
esac
