#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft: controller + broker in one JVM) for
# development and CI, on 127.0.0.1. The broker's own jars come from Maven Central
# (scripts/kafka/pom.xml); jars, Maven's local repository, data and logs all live
# under .cache/ (ignored by git, cacheable by CI).
#
#   scripts/kafka.sh up       fetch jars if needed, format storage, start, wait until it answers
#   scripts/kafka.sh down     stop the broker by its PID (TERM, then KILL after a grace period)
#   scripts/kafka.sh status   running or not, and the bootstrap address
#   scripts/kafka.sh fetch    only fetch the jars
#
# Environment:
#   CIRCUITWATCH_KAFKA_PORT             broker port (default 9092)
#   CIRCUITWATCH_KAFKA_CONTROLLER_PORT  KRaft controller port (default broker port + 1)
#   CIRCUITWATCH_KAFKA_HOME             state folder (default <repo>/.cache/kafka)
#   CIRCUITWATCH_KAFKA_HEAP             JVM heap (default 512m)
#   CIRCUITWATCH_KAFKA_TIMEOUT          seconds to wait for the broker to answer (default 90)
#   KAFKA_VERSION                       override the pinned org.apache.kafka:kafka_2.13 version
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOME_DIR="${CIRCUITWATCH_KAFKA_HOME:-$ROOT/.cache/kafka}"
PORT="${CIRCUITWATCH_KAFKA_PORT:-9092}"
CPORT="${CIRCUITWATCH_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
HEAP="${CIRCUITWATCH_KAFKA_HEAP:-512m}"
TIMEOUT="${CIRCUITWATCH_KAFKA_TIMEOUT:-90}"
POM="$ROOT/scripts/kafka/pom.xml"
M2="$ROOT/.cache/m2"
LIBS="$HOME_DIR/libs"
DATA="$HOME_DIR/data-$PORT"
PIDFILE="$HOME_DIR/broker-$PORT.pid"
LOG="$HOME_DIR/broker-$PORT.log"
PROPS="$HOME_DIR/server-$PORT.properties"
LOG4J="$HOME_DIR/log4j2.properties"
VERSION="${KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

say() { echo "kafka.sh: $*" >&2; }

fetch() {
    if [ -f "$LIBS/kafka_2.13-$VERSION.jar" ]; then
        return
    fi
    command -v mvn >/dev/null || { say "mvn not found (install Maven, e.g. apt-get install maven)"; exit 1; }
    say "fetching org.apache.kafka:kafka_2.13:$VERSION from Maven Central"
    rm -rf "$LIBS"
    mkdir -p "$LIBS" "$M2"
    # stdout carries only the broker URL (`up` is used as $(scripts/kafka.sh up)): Maven talks to stderr
    mvn -q -B -Dstyle.color=never -f "$POM" -Dmaven.repo.local="$M2" -Dkafka.version="$VERSION" \
        dependency:copy-dependencies -DoutputDirectory="$LIBS" >&2
    [ -f "$LIBS/kafka_2.13-$VERSION.jar" ] || { say "Maven did not deliver kafka_2.13-$VERSION.jar"; exit 1; }
}

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

answers() {
    # The port accepts connections and the broker logged that it started.
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && grep -q "Kafka Server started" "$LOG" 2>/dev/null
}

write_config() {
    mkdir -p "$HOME_DIR"
    cat >"$PROPS" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
    cat >"$LOG4J" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
EOF
}

up() {
    if running; then
        say "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
        return
    fi
    fetch
    write_config
    local cp="$LIBS/*"
    local jvm=(-Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$LOG4J" -cp "$cp")
    if [ ! -f "$DATA/meta.properties" ]; then
        local cluster
        cluster="$("$JAVA" "${jvm[@]}" kafka.tools.StorageTool random-uuid)"
        "$JAVA" "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster" -c "$PROPS" >>"$LOG" 2>&1 || {
            say "formatting KRaft storage failed; see $LOG"
            exit 1
        }
    fi
    : >"$LOG"
    nohup "$JAVA" "${jvm[@]}" kafka.Kafka "$PROPS" >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    local deadline=$((SECONDS + TIMEOUT))
    until answers; do
        if ! running; then
            say "broker exited during start; last lines of $LOG:"
            tail -n 20 "$LOG" >&2
            rm -f "$PIDFILE"
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "broker did not answer within ${TIMEOUT}s; see $LOG"
            down
            exit 1
        fi
        sleep 0.5
    done
    say "Apache Kafka $VERSION up on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    echo "kafka://127.0.0.1:$PORT"
}

down() {
    if ! running; then
        rm -f "$PIDFILE"
        say "not running"
        return
    fi
    local pid
    pid="$(cat "$PIDFILE")"
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "pid $pid ignored TERM for 30s; killing"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$PIDFILE"
    say "stopped (pid $pid)"
}

status() {
    if running && answers; then
        echo "running pid=$(cat "$PIDFILE") kafka://127.0.0.1:$PORT"
    elif running; then
        echo "starting pid=$(cat "$PIDFILE") kafka://127.0.0.1:$PORT"
        exit 1
    else
        echo "stopped"
        exit 3
    fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    fetch) fetch ;;
    *)
        echo "usage: $0 up|down|status|fetch  (port: CIRCUITWATCH_KAFKA_PORT, default 9092)" >&2
        exit 2
        ;;
esac
