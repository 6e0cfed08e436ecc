#!/usr/bin/env bash
# Create .venv and install prunesim with everything the workflow and the tests need.
# torch/torchvision are pinned (pyproject.toml); on a machine without local wheels pip
# downloads them from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet -e ".[torch,workflow,dev]"
echo "prunesim installed in .venv ($(.venv/bin/python -c 'import prunesim; print(prunesim.__version__)'))"
