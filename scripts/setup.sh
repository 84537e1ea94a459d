#!/usr/bin/env bash
# Create (or reuse) the virtual environment with headstart and its dev dependencies.
# The venv is reused while pyproject.toml is unchanged (a stamp file keyed by its hash), so CI and
# repeated runs skip the multi-GB torch install. HEADSTART_VENV moves it (CI keeps it in ~/.cache).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${HEADSTART_VENV:-$root/.venv}
python=${PYTHON:-python3}
stamp="$venv/.headstart-deps-$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setting up $venv (torch, torchvision, timm, ...; a few minutes the first time)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  # torch and torchvision come from the registry together, so their versions match.
  "$venv/bin/python" -m pip install -q -e "$root[dev]"
  touch "$stamp"
else
  # the venv may have been made for another clone: point the editable install at this one
  "$venv/bin/python" -m pip install -q --no-deps -e "$root"
fi
echo "$venv"
