#!/usr/bin/env bash
# Fetch the Pyodide runtime from the npm registry (never a CDN) into a cache folder, for the
# browser peer's page (tether.web) and its tests (tests/browser).
#
#   scripts/fetch_pyodide.sh [DEST]        default DEST: .cache/pyodide/$PYODIDE_VERSION
#
# Idempotent: does nothing when DEST already holds pyodide.mjs. Needs npm (only npm pack is
# used; nothing is installed). The npm tarball is the core runtime only: pyodide.mjs,
# pyodide.asm.{mjs,wasm}, python_stdlib.zip, pyodide-lock.json (no wheels, no micropip).
set -euo pipefail

PYODIDE_VERSION="${PYODIDE_VERSION:-314.0.7}"
cd "$(dirname "$0")/.."
DEST="${1:-.cache/pyodide/$PYODIDE_VERSION}"

if [ -f "$DEST/pyodide.mjs" ] && [ -f "$DEST/pyodide.asm.wasm" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_pyodide.sh: npm is needed to fetch pyodide@$PYODIDE_VERSION" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "pyodide@$PYODIDE_VERSION" >/dev/null)
tarball="$tmp/pyodide-$PYODIDE_VERSION.tgz"
[ -f "$tarball" ] || { echo "fetch_pyodide.sh: npm pack did not produce $tarball" >&2; exit 1; }
mkdir -p "$tmp/unpacked"
tar xzf "$tarball" -C "$tmp/unpacked" --strip-components=1
[ -f "$tmp/unpacked/pyodide.mjs" ] || { echo "fetch_pyodide.sh: no pyodide.mjs in the tarball" >&2; exit 1; }
# Move into place in one step so a half-finished fetch never looks complete.
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST"
mv "$tmp/unpacked" "$DEST"
echo "fetch_pyodide.sh: pyodide $PYODIDE_VERSION in $DEST"
