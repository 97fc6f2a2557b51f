#!/usr/bin/env bash
# The layers contract (pyproject.toml, import-linter) on the installed layout: a link tree in .cache/lint where
# deploy_compare/ holds the app layer and links to the top-level folders setup.py maps into the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tree=.cache/lint/deploy_compare
rm -rf .cache/lint && mkdir -p "$tree"
for entry in deploy_compare/*; do ln -s "$root/$entry" "$tree/$(basename "$entry")"; done
for layer in core models serving loadtests; do ln -s "$root/$layer" "$tree/$layer"; done
cd .cache/lint && exec "$root/.venv/bin/lint-imports" --config "$root/pyproject.toml"
