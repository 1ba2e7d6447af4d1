#!/usr/bin/env bash
# A throwaway 3-master Redis Cluster on this machine, for tests and local tries:
#   ops/redis-cluster.sh start    # masters on 127.0.0.1:7101-7103 (REDIS_CLUSTER_PORT_BASE=7100 moves them)
#   ops/redis-cluster.sh stop     # stops them and removes their directory
#   ops/redis-cluster.sh status   # exit 0 when cluster_state:ok
#   ops/redis-cluster.sh kill PORT     # SIGKILL one node (a crash: it loses its data, nothing is persisted)
#   ops/redis-cluster.sh restart PORT  # start that node again: it rejoins with its slots, empty
# Uses the machine's redis-server and redis-cli; no persistence (no RDB, no AOF), data in a temp dir.
# Then: REDIS_URL=redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
set -euo pipefail

BASE="${REDIS_CLUSTER_PORT_BASE:-7100}"
PORTS=("$((BASE + 1))" "$((BASE + 2))" "$((BASE + 3))")
DIR="${REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/wallet-redis-cluster-$BASE}"

cluster_ok() {
  redis-cli -h 127.0.0.1 -p "${PORTS[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

start_node() {
  local port="$1"
  mkdir -p "$DIR/$port"
  redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file "$DIR/$port/nodes.conf" --cluster-node-timeout 2000 \
    --save "" --appendonly no --dir "$DIR/$port" \
    --daemonize yes --pidfile "$DIR/$port/redis.pid" --logfile "$DIR/$port/redis.log"
}

start() {
  if cluster_ok; then
    echo "redis cluster already running on ${PORTS[*]}"
    return 0
  fi
  mkdir -p "$DIR"
  for port in "${PORTS[@]}"; do start_node "$port"; done
  for port in "${PORTS[@]}"; do
    for _ in $(seq 1 50); do
      redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  # Nodes kept from an earlier start already know their slots; fresh ones need creating.
  if ! redis-cli -h 127.0.0.1 -p "${PORTS[0]}" cluster info | grep -q '^cluster_slots_assigned:16384'; then
    redis-cli --cluster create "${PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$DIR/create.log"
  fi
  for _ in $(seq 1 100); do
    if cluster_ok; then
      echo "redis cluster ready on ${PORTS[*]}"
      return 0
    fi
    sleep 0.1
  done
  echo "redis cluster did not reach cluster_state:ok; see $DIR" >&2
  return 1
}

stop() {
  for port in "${PORTS[@]}"; do
    if [ -f "$DIR/$port/redis.pid" ]; then
      pid="$(cat "$DIR/$port/redis.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  rm -rf "$DIR"
  echo "redis cluster on ${PORTS[*]} stopped"
}

kill_node() {
  local pid
  pid="$(cat "$DIR/$1/redis.pid")"
  kill -KILL "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$DIR/$1/redis.pid"
}

restart_node() {
  start_node "$1"
  for _ in $(seq 1 100); do
    if cluster_ok; then return 0; fi
    sleep 0.1
  done
  echo "redis cluster did not reach cluster_state:ok after restarting $1" >&2
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) cluster_ok ;;
  kill) kill_node "${2:?port}" ;;
  restart) restart_node "${2:?port}" ;;
  *)
    echo "usage: $0 start|stop|status|kill PORT|restart PORT" >&2
    exit 2
    ;;
esac
