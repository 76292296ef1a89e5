#!/usr/bin/env bash
# Set convo up on a fresh machine, then run the main job on the bundled seed data.
#   ./setup.sh            set up, then `convo run --env dev` (ingest, build, check, reports, site)
#   ./setup.sh --no-run   set up only (CI uses this, then runs the tests)
set -euo pipefail
cd "$(dirname "$0")"

# System packages the tests need: Chromium for the site's browser test, Java 17 for PySpark.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# Python environment in .venv, exactly as locked in uv.lock. Bytecode is compiled at install, so
# every command starts faster, also where PYTHONDONTWRITEBYTECODE=1 keeps Python from caching it
# (importing Great Expectations from source takes about twice as long).
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
# JupyterLab (the `lab` extra) is for editing notebooks, not for running them: see the README.
.venv/bin/uv sync --frozen --extra spark --extra docs --compile-bytecode --quiet

if [ "${1:-}" != "--no-run" ]; then
  .venv/bin/convo run --env dev
fi
