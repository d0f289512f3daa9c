#!/usr/bin/env bash
# Spark 3.5 + Iceberg 1.10 as a co-writer for tests/cowriter (DESIGN section 7), in DIR (.spark).
#
# Idempotent and best-effort: `make test` runs it before the suite and never fails because of
# it. On success DIR/ready holds the Python and the jar folder; on failure DIR/unavailable
# holds the reason, which the co-writer tests print when they skip.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
DIR="${1:-.spark}"
PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
[ -f "$DIR/ready" ] && exit 0
rm -f "$DIR/unavailable"
LOG="$DIR/setup.log"
: > "$LOG"

fail() {
    echo "Spark co-writer unavailable: $1 (see $LOG)" | tee "$DIR/unavailable" >&2
    exit 0
}
step() { echo "== $*" >> "$LOG"; "$@" >> "$LOG" 2>&1; }

java17() {  # the first Java 17 found: the Debian JVM folder, then the java on PATH
    local j
    for j in /usr/lib/jvm/java-17-openjdk-*/bin/java "$(command -v java 2>/dev/null)"; do
        if [ -x "$j" ] && "$j" -version 2>&1 | grep -q 'version "17'; then
            dirname "$(dirname "$(readlink -f "$j")")"
            return 0
        fi
    done
    return 1
}
JAVA_HOME_17="$(java17)" || {
    step apt-get install -y --no-install-recommends openjdk-17-jre-headless \
        || { step apt-get update && step apt-get install -y --no-install-recommends openjdk-17-jre-headless; }
    JAVA_HOME_17="$(java17)" || fail "no Java 17 (Spark 3.5 runs on it) and apt-get could not install openjdk-17-jre-headless"
}

SQLITE_JAR=/usr/share/java/sqlite-jdbc.jar
if [ ! -f "$SQLITE_JAR" ]; then
    step apt-get install -y --no-install-recommends libxerial-sqlite-jdbc-java libxerial-sqlite-jdbc-jni \
        || { step apt-get update && step apt-get install -y --no-install-recommends \
                libxerial-sqlite-jdbc-java libxerial-sqlite-jdbc-jni; } \
        || fail "apt-get could not install libxerial-sqlite-jdbc-java (the SQLite JDBC driver)"
fi
[ -f "$SQLITE_JAR" ] || fail "$SQLITE_JAR missing after installing libxerial-sqlite-jdbc-java"

if [ ! -x "$DIR/venv/bin/python" ]; then
    step "$PYTHON" -m venv "$DIR/venv" || fail "could not create a virtualenv with $PYTHON"
fi
if ! "$DIR/venv/bin/python" -c "import pyspark, snowpark_connect_deps_iceberg" >/dev/null 2>&1; then
    # Short network timeouts: offline, this fails in seconds instead of minutes.
    step "$DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check --retries 1 --timeout 30 \
        "pyspark==3.5.*" snowpark-connect-deps-iceberg \
        || fail "pip could not install pyspark 3.5 and snowpark-connect-deps-iceberg"
fi
SITE="$("$DIR/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ICEBERG_RUNTIME="$(ls "$SITE"/snowpark_connect_deps_iceberg/*/iceberg-spark-runtime-3.5_2.12-1.10*.jar 2>/dev/null | head -1)"
[ -n "$ICEBERG_RUNTIME" ] || ICEBERG_RUNTIME="$(find "$SITE" -name 'iceberg-spark-runtime-3.5_2.12-1.10*.jar' | head -1)"
[ -n "$ICEBERG_RUNTIME" ] || fail "no iceberg-spark-runtime-3.5_2.12-1.10 jar in snowpark-connect-deps-iceberg"
EXTENSIONS="$(find "$SITE" -name 'iceberg-spark-extensions-3.5_2.12-1.10*.jar' | head -1)"
[ -n "$EXTENSIONS" ] || fail "no iceberg-spark-extensions-3.5_2.12-1.10 jar in snowpark-connect-deps-iceberg"

JARS="$DIR/jars"
mkdir -p "$JARS"
if [ ! -f "$JARS/iceberg-jackson-relocated.jar" ]; then
    step "$DIR/venv/bin/python" "$HERE/relocate_jackson.py" "$JARS/iceberg-jackson-relocated.jar" \
        "$SITE"/pyspark/jars/jackson-core-2.15.2.jar "$SITE"/pyspark/jars/jackson-databind-2.15.2.jar \
        "$SITE"/pyspark/jars/jackson-annotations-2.15.2.jar "$SITE"/pyspark/jars/jackson-datatype-jsr310-2.15.2.jar \
        || { rm -f "$JARS/iceberg-jackson-relocated.jar"; fail "could not rebuild the relocated Jackson classes"; }
fi
ln -sf "$ICEBERG_RUNTIME" "$JARS/iceberg-spark-runtime.jar"
ln -sf "$EXTENSIONS" "$JARS/iceberg-spark-extensions.jar"
ln -sf "$SQLITE_JAR" "$JARS/sqlite-jdbc.jar"
# Smoke test: a session, an Iceberg table in a SQLite JDBC catalog, a write and a read.
SMOKE="$DIR/smoke"
rm -rf "$SMOKE"
printf '%s\n' '{"sql": "CREATE NAMESPACE lakeroute.smoke"}' \
    '{"sql": "CREATE TABLE lakeroute.smoke.t (id bigint) USING iceberg"}' \
    '{"sql": "INSERT INTO lakeroute.smoke.t VALUES (1)"}' '{"sql": "SELECT count(*) FROM lakeroute.smoke.t"}' \
    | JAVA_HOME="$JAVA_HOME_17" SPARK_LOCAL_IP=127.0.0.1 timeout 600 "$DIR/venv/bin/python" "$HERE/driver.py" \
        "$SMOKE/home" "$JARS" init > "$SMOKE.out" 2>> "$LOG"
tail -1 "$SMOKE.out" | grep -q '"rows": \[\[1\]\]' \
    || fail "the Spark smoke test (create, insert, select an Iceberg table) did not answer 1: $(tail -c 300 "$SMOKE.out")"
rm -rf "$SMOKE" "$SMOKE.out"
printf 'python=%s\njars=%s\njava_home=%s\n' "$DIR/venv/bin/python" "$JARS" "$JAVA_HOME_17" > "$DIR/ready"
echo "Spark co-writer ready in $DIR" >&2
