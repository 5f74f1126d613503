#!/usr/bin/env bash
# Manage a real single-node Apache Kafka broker (KRaft, combined broker+controller)
# for development, tests and CI. The broker's jars come from Maven Central via mvn and
# are cached outside the repository. See docs/kafka-broker.md.
#
# Usage: scripts/kafka.sh fetch|start|stop|restart|status|reset|topic NAME [PARTITIONS]
#                         |bootstrap|logs [N]|run-class CLASS [ARGS...]
set -Eeuo pipefail
umask 022

KAFKA_VERSION="${SLUICE_KAFKA_VERSION:-4.3.1}"
SCALA_VERSION="2.13"
LOG4J_VERSION="${SLUICE_KAFKA_LOG4J_VERSION:-2.25.4}"          # matches log4j-core pulled in by Kafka
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

CACHE_DIR="${SLUICE_CACHE_DIR:-${HOME:-/root}/.cache/sluice}"
KAFKA_HOME="${CACHE_DIR}/kafka-${KAFKA_VERSION}"
LIBS_DIR="${KAFKA_HOME}/libs"
FETCH_MARKER="${KAFKA_HOME}/.fetched"
CDS_DIR="${KAFKA_HOME}/cds"

PORT="${SLUICE_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${SLUICE_KAFKA_CONTROLLER_PORT:-19093}"
HOST="127.0.0.1"
BOOTSTRAP="${HOST}:${PORT}"
DATA_DIR="${SLUICE_KAFKA_DATA_DIR:-${CACHE_DIR}/kafka-data}"
LOG_DIRS="${DATA_DIR}/kraft-combined-logs"   # Kafka's data (log.dirs), not text logs
CONF_DIR="${DATA_DIR}/config"
CDS_PENDING="${DATA_DIR}/cds.pending"         # broker CDS archive recorded at its exit
LOG_DIR="${DATA_DIR}/logs"                   # text logs of the broker
PID_FILE="${DATA_DIR}/kafka.pid"
LOCK_FILE="${DATA_DIR}/kafka.sh.lock"
BROKER_LOG="${LOG_DIR}/server.log"
BROKER_OUT="${LOG_DIR}/kafka.out"

START_TIMEOUT="${SLUICE_KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT="${SLUICE_KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${SLUICE_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"

log() { printf '[kafka.sh] %s\n' "$*" >&2; }
die() { printf '[kafka.sh] error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $(basename "$0") <command>
  fetch                    download Kafka ${KAFKA_VERSION} jars via mvn into ${LIBS_DIR}
  start                    fetch if needed, format storage once, start the broker, wait until ready
  stop                     SIGTERM, wait up to ${STOP_TIMEOUT}s, then SIGKILL
  restart                  stop + start
  status                   exit 0 if running and answering, 3 if not running, 1 if not answering
  reset                    stop and wipe ${DATA_DIR}
  topic NAME [PARTITIONS]  create a topic if it does not exist (default partitions: 3)
  bootstrap                print the bootstrap address (${BOOTSTRAP})
  logs [N]                 print the last N lines (default 100) of the broker log
  run-class CLASS [ARGS]   run a Kafka class (e.g. org.apache.kafka.tools.TopicCommand) on the cached classpath
env: SLUICE_KAFKA_PORT SLUICE_KAFKA_CONTROLLER_PORT SLUICE_KAFKA_DATA_DIR SLUICE_CACHE_DIR
     SLUICE_KAFKA_VERSION SLUICE_KAFKA_HEAP_OPTS SLUICE_KAFKA_START_TIMEOUT SLUICE_KAFKA_EXTRA_CONFIG
     SLUICE_KAFKA_CDS SLUICE_MAVEN_ARGS
EOF
}

# ---------------------------------------------------------------------------- java
find_java() {
  local j
  if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then j="${JAVA_HOME}/bin/java"
  else j="$(command -v java || true)"; fi
  [[ -n "$j" ]] || die "java not found (Java 17+ required; on Debian: apt-get install -y openjdk-17-jre-headless)"
  local v
  v="$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1)"
  [[ "${v%%.*}" =~ ^[0-9]+$ && "${v%%.*}" -ge 17 ]] || die "Java 17+ required, found '${v:-unknown}' at $j"
  JAVA="$j"
  # Identifies this JVM build; keys the class-data-sharing archives below.
  local real; real="$(readlink -f "$j")"
  JAVA_ID="$( { echo "$real"; stat -c '%s %Y' "$real" "$(dirname "$real")/../lib/server/libjvm.so" 2>/dev/null || true; } \
    | cksum | cut -d' ' -f1)"
}

# ---------------------------------------------------------------------------- fetch
is_fetched() {
  [[ -f "$FETCH_MARKER" && -d "$LIBS_DIR" ]] && compgen -G "${LIBS_DIR}/kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar" >/dev/null
}

cmd_fetch() {
  if is_fetched; then
    log "Kafka ${KAFKA_VERSION} already fetched: ${LIBS_DIR}"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (on Debian: apt-get install -y maven)"
  mkdir -p "$KAFKA_HOME"
  # Concurrent fetches (e.g. parallel CI jobs) wait for each other; fd 8 closes on return.
  if command -v flock >/dev/null; then
    exec 8>"${KAFKA_HOME}/.fetch.lock"
    flock -w 600 8 || die "timed out waiting for ${KAFKA_HOME}/.fetch.lock"
    if is_fetched; then exec 8>&-; log "Kafka ${KAFKA_VERSION} fetched meanwhile: ${LIBS_DIR}"; return 0; fi
  fi
  local work
  work="$(mktemp -d "${KAFKA_HOME}/.fetch.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  cat >"${work}/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.sluice</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_${SCALA_VERSION}</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <!-- CLI classes: TopicCommand, ConsoleProducer/ConsoleConsumer, ... -->
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>${KAFKA_VERSION}</version>
      <exclusions>
        <!-- only needed by the Connect plugin-path tool; pulls in Jetty/Jersey -->
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <!-- logging backend: Kafka 4 logs through slf4j 1.7 to log4j2 -->
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
EOF
  log "fetching Kafka ${KAFKA_VERSION} (org.apache.kafka:kafka_${SCALA_VERSION} + kafka-tools + log4j2) from Maven Central ..."
  local t0=$SECONDS
  # shellcheck disable=SC2086  # SLUICE_MAVEN_ARGS is split on purpose (e.g. -Dmaven.repo.local=DIR)
  if ! mvn -B -q ${SLUICE_MAVEN_ARGS:-} -f "${work}/pom.xml" "${DEP_PLUGIN}:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="${work}/libs" >"${work}/mvn.log" 2>&1; then
    tail -n 40 "${work}/mvn.log" >&2
    die "mvn failed to fetch Kafka ${KAFKA_VERSION}"
  fi
  compgen -G "${work}/libs/kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar" >/dev/null \
    || die "mvn finished but kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar is missing"
  rm -rf "${LIBS_DIR}" "${CDS_DIR}"
  mv "${work}/libs" "${LIBS_DIR}"
  write_log4j_configs
  printf 'kafka=%s\nfetched=%s\njars=%s\n' "$KAFKA_VERSION" "$(date -u +%FT%TZ)" \
    "$(find "$LIBS_DIR" -name '*.jar' | wc -l)" >"$FETCH_MARKER"
  rm -rf "$work"; trap - EXIT
  exec 8>&-
  log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars into ${LIBS_DIR} in $((SECONDS - t0))s"
}

write_log4j_configs() {
  # Broker: rolling file (kafka.logs.dir is set on the command line).
  cat >"${KAFKA_HOME}/log4j2-broker.properties.tmp.$$" <<'EOF'
status = warn
name = sluice-kafka-broker
# Keep logging until the JVM is gone, so the whole shutdown sequence is logged.
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 5
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = INFO
EOF
  # CLI tools: warnings to stderr only, so their stdout stays clean.
  cat >"${KAFKA_HOME}/log4j2-tools.properties.tmp.$$" <<'EOF'
status = warn
name = sluice-kafka-tools
shutdownHook = disable
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
  mv -f "${KAFKA_HOME}/log4j2-broker.properties.tmp.$$" "${KAFKA_HOME}/log4j2-broker.properties"
  mv -f "${KAFKA_HOME}/log4j2-tools.properties.tmp.$$" "${KAFKA_HOME}/log4j2-tools.properties"
}

ensure_fetched() {
  is_fetched || cmd_fetch
  write_log4j_configs   # cheap; keeps the configs in step with this script
}

# ---------------------------------------------------------------------------- helpers
# Class-data sharing (JDK 17 dynamic AppCDS): the first JVM of a kind records the classes
# it loaded into an archive at exit; later JVMs map it and start 1-3 s sooner on a small
# machine. A stale or mismatched archive is ignored by the JVM (-Xshare:auto).
# SLUICE_KAFKA_CDS=0 disables it.
cds_opts() {  # cds_opts KIND -> sets CDS=(jvm options) and CDS_TMP (archive being recorded)
  CDS=(); CDS_TMP=""
  [[ "${SLUICE_KAFKA_CDS:-1}" == 1 ]] || return 0
  local jsa="${CDS_DIR}/${1}-${JAVA_ID}.jsa"
  if [[ -s "$jsa" ]]; then
    CDS=(-XX:SharedArchiveFile="$jsa" -Xshare:auto)
  else
    mkdir -p "$CDS_DIR"
    CDS_TMP="${jsa}.tmp.$$.${RANDOM}"
    CDS=(-XX:ArchiveClassesAtExit="$CDS_TMP")
  fi
}
# JVM warnings (including CDS ones) go to stderr, never into a tool's stdout.
JVM_LOG_OPTS=(-Xlog:disable -Xlog:all=warning:stderr)
cds_commit() {  # cds_commit TMPFILE EXIT_STATUS: publish a recorded archive atomically
  local tmp="${1:-}" rc="${2:-0}"
  [[ -n "$tmp" ]] || return 0
  # A JVM killed by a signal (timeout, SIGKILL) may have left a partial archive.
  if [[ -s "$tmp" ]] && (( rc < 124 )); then mv -f "$tmp" "${tmp%.tmp.*}"; else rm -f "$tmp"; fi
}

# Run a Kafka CLI class with a quick-starting client JVM.
cli_cmd() {  # sets CLI=(java ... CLASS ARGS...)
  local cls="$1"; shift
  cds_opts tools
  CLI=("$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${CDS[@]}" "${JVM_LOG_OPTS[@]}"
       -Djava.awt.headless=true
       -Dlog4j2.configurationFile="${KAFKA_HOME}/log4j2-tools.properties"
       -cp "${LIBS_DIR}/*" "$cls" "$@")
}
run_class() {
  cli_cmd "$@"
  local rc=0
  "${CLI[@]}" || rc=$?
  cds_commit "$CDS_TMP" "$rc"
  return "$rc"
}

read_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local p; p="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$p" ]] || return 1
  printf '%s' "$p"
}

# True if PID is a live process (a zombie awaiting its reaper counts as dead).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st; st="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)"
  [[ "$st" != Z ]]
}

# True if the pid file names a live kafka.Kafka process (guards against pid reuse).
is_running() {
  local p; p="$(read_pid)" || return 1
  alive "$p" || return 1
  [[ -r "/proc/$p/cmdline" ]] || return 0
  tr '\0' ' ' <"/proc/$p/cmdline" | grep -q 'kafka\.Kafka' || return 1
}

port_open() {  # port_open HOST PORT
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# The broker answers a metadata request (lists topics) within 30 s.
# The last attempt's output is kept in ${LOG_DIR}/metadata-check.log.
metadata_ok() {
  mkdir -p "$LOG_DIR"
  cli_cmd org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list
  local rc=0
  if command -v timeout >/dev/null; then timeout 30 "${CLI[@]}"; else "${CLI[@]}"; fi \
    >"${LOG_DIR}/metadata-check.log" 2>&1 || rc=$?
  cds_commit "$CDS_TMP" "$rc"
  return "$rc"
}

with_lock() {
  mkdir -p "$DATA_DIR"
  if command -v flock >/dev/null; then
    exec 9>"$LOCK_FILE"
    flock -w 120 9 || die "timed out waiting for lock $LOCK_FILE"
  fi
}

gen_cluster_id() {
  # A Kafka Uuid: 16 random bytes, base64url without padding; must not start with '-'.
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* && ${#id} -eq 22 ]] && break
  done
  printf '%s' "$id"
}

write_server_properties() {
  mkdir -p "$CONF_DIR" "$LOG_DIRS" "$LOG_DIR"
  local f="${CONF_DIR}/server.properties"
  cat >"$f.tmp" <<EOF
# Generated by scripts/kafka.sh on $(date -u +%FT%TZ); edits are overwritten on start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${CONTROLLER_PORT}
listeners=PLAINTEXT://${HOST}:${PORT},CONTROLLER://${HOST}:${CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://${HOST}:${PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
num.network.threads=3
num.io.threads=4
log.dirs=${LOG_DIRS}
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.retention.bytes=1073741824
log.segment.bytes=134217728
EOF
  if [[ -n "${SLUICE_KAFKA_EXTRA_CONFIG:-}" ]]; then
    printf '# SLUICE_KAFKA_EXTRA_CONFIG\n%s\n' "$SLUICE_KAFKA_EXTRA_CONFIG" >>"$f.tmp"
  fi
  mv "$f.tmp" "$f"
  SERVER_PROPERTIES="$f"
}

format_storage() {
  if [[ -f "${LOG_DIRS}/meta.properties" ]]; then
    return 0
  fi
  local id_file="${DATA_DIR}/cluster.id" id
  if [[ -s "$id_file" ]]; then id="$(cat "$id_file")"; else id="$(gen_cluster_id)"; printf '%s\n' "$id" >"$id_file"; fi
  log "formatting storage in ${LOG_DIRS} (cluster id ${id})"
  if ! run_class kafka.tools.StorageTool format --ignore-formatted \
        --cluster-id "$id" --config "$SERVER_PROPERTIES" >"${LOG_DIR}/format.log" 2>&1; then
    cat "${LOG_DIR}/format.log" >&2
    die "kafka-storage format failed"
  fi
}

# ---------------------------------------------------------------------------- commands
cmd_start() {
  find_java
  ensure_fetched
  with_lock
  if is_running; then
    log "already running (pid $(read_pid)) on ${BOOTSTRAP}; log: ${BROKER_LOG}"
    return 0
  fi
  rm -f "$PID_FILE"
  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    port_open "$HOST" "$p" && die "port ${HOST}:${p} is already in use by another process (set SLUICE_KAFKA_PORT / SLUICE_KAFKA_CONTROLLER_PORT)"
  done
  write_server_properties
  format_storage

  local t0=$SECONDS
  cds_opts broker
  if [[ -n "$CDS_TMP" ]]; then printf '%s\n' "$CDS_TMP" >"$CDS_PENDING"; else rm -f "$CDS_PENDING"; fi
  # setsid + nohup: the broker outlives this script and the caller's process group.
  # 8>&- 9>&-: the broker must not inherit the lock fds, or it would hold the locks forever.
  # shellcheck disable=SC2086
  setsid nohup "$JAVA" $HEAP_OPTS -server \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError "${CDS[@]}" "${JVM_LOG_OPTS[@]}" \
    -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOG_DIR" \
    -Dlog4j2.configurationFile="${KAFKA_HOME}/log4j2-broker.properties" \
    -cp "${LIBS_DIR}/*" kafka.Kafka "$SERVER_PROPERTIES" \
    </dev/null >"$BROKER_OUT" 2>&1 8>&- 9>&- &
  local pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"
  log "started broker pid ${pid}; waiting up to ${START_TIMEOUT}s for ${BOOTSTRAP} ..."

  local deadline=$((SECONDS + START_TIMEOUT))
  while ! port_open "$HOST" "$PORT"; do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      tail -n 30 "$BROKER_OUT" "$BROKER_LOG" >&2 2>/dev/null || true
      die "broker exited during startup; see ${BROKER_LOG} and ${BROKER_OUT}"
    fi
    (( SECONDS < deadline )) || { startup_timeout "$pid"; }
    sleep 0.2
  done
  until metadata_ok; do
    alive "$pid" || { rm -f "$PID_FILE"; die "broker exited during startup; see ${BROKER_LOG}"; }
    (( SECONDS < deadline )) || { startup_timeout "$pid"; }
    sleep 0.5
  done
  log "broker ready on ${BOOTSTRAP} (Kafka ${KAFKA_VERSION}, pid ${pid}, $((SECONDS - t0))s)"
  log "log: ${BROKER_LOG}  data: ${LOG_DIRS}"
}

startup_timeout() {
  tail -n 30 "$BROKER_LOG" "${LOG_DIR}/metadata-check.log" >&2 2>/dev/null || true
  kill -TERM "$1" 2>/dev/null || true
  sleep 2; kill -KILL "$1" 2>/dev/null || true
  rm -f "$PID_FILE"
  die "broker not ready after ${START_TIMEOUT}s; see ${BROKER_LOG}"
}

cmd_stop() {
  with_lock
  if ! is_running; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  local pid; pid="$(read_pid)"
  log "stopping broker pid ${pid} ..."
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT)) status=0
  while alive "$pid"; do
    if (( SECONDS >= deadline )); then
      log "still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      status=137
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
  if [[ -f "$CDS_PENDING" ]]; then cds_commit "$(cat "$CDS_PENDING")" "$status"; rm -f "$CDS_PENDING"; fi
  log "stopped"
}

cmd_status() {
  if ! is_running; then
    echo "kafka: not running (bootstrap ${BOOTSTRAP}, data ${DATA_DIR})"
    return 3
  fi
  find_java
  ensure_fetched
  if port_open "$HOST" "$PORT" && metadata_ok; then
    echo "kafka: running (pid $(read_pid), Kafka ${KAFKA_VERSION}, bootstrap ${BOOTSTRAP}, log ${BROKER_LOG})"
    return 0
  fi
  echo "kafka: process $(read_pid) alive but not answering on ${BOOTSTRAP} (log ${BROKER_LOG})"
  return 1
}

cmd_reset() {
  cmd_stop
  case "$DATA_DIR" in
    ""|"/"|"$HOME"|"$HOME/"|"$CACHE_DIR"|"$CACHE_DIR/"|"$KAFKA_HOME"*) die "refusing to wipe data dir '${DATA_DIR}'";;
  esac
  rm -rf "$DATA_DIR"
  log "wiped ${DATA_DIR}"
}

cmd_topic() {
  local name="${1:-}" parts="${2:-3}"
  [[ -n "$name" ]] || die "usage: topic NAME [PARTITIONS]"
  [[ "$parts" =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer"
  find_java
  ensure_fetched
  is_running || die "broker not running (run: $0 start)"
  run_class org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
    --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 >/dev/null
  log "topic ${name} ready"
}

main() {
  local cmd="${1:-}"; shift || true
  case "$cmd" in
    fetch)     find_java; cmd_fetch ;;
    start)     cmd_start ;;
    stop)      cmd_stop ;;
    restart)   cmd_stop; cmd_start ;;
    status)    cmd_status ;;
    reset)     cmd_reset ;;
    topic)     cmd_topic "$@" ;;
    bootstrap) echo "$BOOTSTRAP" ;;
    logs)      tail -n "${1:-100}" "$BROKER_LOG" ;;
    run-class) [[ $# -ge 1 ]] || die "usage: run-class CLASS [ARGS...]"; find_java; ensure_fetched; run_class "$@" ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
