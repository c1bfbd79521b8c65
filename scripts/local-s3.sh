#!/usr/bin/env bash
# A real S3 endpoint on this machine for tests, benchmarks and trying statesnap: a single-node Ceph cluster
# (one monitor, one bluestore OSD on a file, radosgw) on 127.0.0.1, all of its state and logs in one directory.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/local-s3.sh [options] <command>

Commands:
  install   apt-get install what start needs (radosgw ceph-mon ceph-osd curl); skips what is installed
  start     start monitor, OSD and radosgw, create the S3 user, wait until a signed S3 request succeeds
  stop      stop the daemons and delete the state directory
  status    say whether the daemons run and S3 answers (exit 0 only when it does)
  env       print `export AWS_...=` lines for clients: eval "$(scripts/local-s3.sh env)"

Options (or the environment variable in brackets):
  --dir DIR          state directory               [LOCAL_S3_DIR, default /tmp/statesnap-local-s3]
  --port N           start: radosgw (S3) port on 127.0.0.1 [LOCAL_S3_PORT, default 7480]
  --mon-port N       start: monitor port on 127.0.0.1 [LOCAL_S3_MON_PORT, default 3300]
  --size GIB         start: size of the OSD's sparse block file [LOCAL_S3_SIZE_GIB, default 20]
  --timeout S        start: seconds to wait for each daemon [LOCAL_S3_TIMEOUT, default 120]
  --bucket NAME      start: also create this bucket (repeatable)

Needs root (the daemons run as root) and, for start, the packages of `install`. A second server needs its
own --dir, --port and --mon-port. DIR/run/client.rgw.pid is radosgw's pid (to stop it mid-test), DIR/log/ has
the daemons' logs. A DIR on tmpfs (/dev/shm) is faster for small objects and holds the data in RAM.
EOF
}

STATE_DIR=${LOCAL_S3_DIR:-/tmp/statesnap-local-s3}
RGW_PORT=${LOCAL_S3_PORT:-7480}
MON_PORT=${LOCAL_S3_MON_PORT:-3300}
SIZE_GIB=${LOCAL_S3_SIZE_GIB:-20}
TIMEOUT=${LOCAL_S3_TIMEOUT:-120}
BUCKETS=()
COMMAND=
# The region clients sign with. RGW's default zonegroup accepts any region name in a SigV4 scope.
REGION=us-east-1
# No ceph-mgr: S3 needs none, and leaving it out saves 35 of 99 packages.
PACKAGES=(radosgw ceph-mon ceph-osd curl)
# The line that marks a directory as ours: `stop` and a fresh `start` delete only such a directory.
MARKER='# statesnap local-s3 state directory'

die() {
  echo "local-s3: $*" >&2
  exit 1
}
say() { echo "local-s3: $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
  --dir) STATE_DIR=${2:?--dir needs a value}; shift 2 ;;
  --port) RGW_PORT=${2:?--port needs a value}; shift 2 ;;
  --mon-port) MON_PORT=${2:?--mon-port needs a value}; shift 2 ;;
  --size) SIZE_GIB=${2:?--size needs a value}; shift 2 ;;
  --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
  --bucket) BUCKETS+=("${2:?--bucket needs a value}"); shift 2 ;;
  -h | --help) usage; exit 0 ;;
  install | start | stop | status | env)
    [ -z "$COMMAND" ] || die "one command at a time, got \`$COMMAND\` and \`$1\`"
    COMMAND=$1; shift ;;
  *) usage >&2; die "unknown argument \`$1\`" ;;
  esac
done
[ -n "$COMMAND" ] || { usage >&2; exit 2; }
for value in "$RGW_PORT" "$MON_PORT" "$SIZE_GIB" "$TIMEOUT"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || die "ports, --size and --timeout must be positive integers, got \`$value\`"
done
case $STATE_DIR in /*) ;; *) STATE_DIR=$PWD/$STATE_DIR ;; esac
STATE_DIR=${STATE_DIR%/}

CONF=$STATE_DIR/ceph.conf
ENDPOINT=http://127.0.0.1:$RGW_PORT
ACCESS_KEY=
SECRET_KEY=
DAEMONS=(mon.a osd.0 client.rgw)

ceph_cli() { timeout 30 ceph -c "$CONF" "$@"; }

# A killed daemon can stay a zombie for a while (nothing here reaps it at once): it is not running.
is_alive() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) && [ -n "$state" ] && [ "$state" != Z ]
}

pid_of() {
  local file=$STATE_DIR/run/$1.pid pid
  [ -s "$file" ] || return 1
  pid=$(<"$file")
  # A pid file can outlive its daemon and the pid be reused: only a live process of that name counts.
  is_alive "$pid" || return 1
  case $(<"/proc/$pid/comm") in ceph-mon | ceph-osd | radosgw) echo "$pid" ;; *) return 1 ;; esac
}

running_daemons() {
  local daemon
  for daemon in "${DAEMONS[@]}"; do
    if pid_of "$daemon" >/dev/null; then echo "$daemon"; fi
  done
}

is_ours() { [ -f "$CONF" ] && head -n 1 "$CONF" | grep -qxF "$MARKER"; }

# The endpoint and keys of the running server: `env` and `status` must not depend on repeating start's options.
read_client_settings() {
  [ -s "$STATE_DIR/client.env" ] || return 1
  # shellcheck source=/dev/null
  . "$STATE_DIR/client.env"
}

# One signed S3 request (SigV4, as any SDK sends it): proves radosgw answers and knows the user's keys.
s3_request() {
  local method=$1 path=$2
  # curl 7.88 signs no payload hash unless given one, and RGW rejects a SigV4 request without it.
  curl --silent --show-error --fail --max-time 10 --output /dev/null \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X "$method" "$ENDPOINT$path"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until SECONDS WHAT LOG COMMAND...: polls COMMAND every 0.5 s; on timeout names WHAT and shows LOG's tail.
wait_until() {
  local seconds=$1 what=$2 log=$3
  shift 3
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      say "timed out after $seconds s waiting for $what; last lines of $log:"
      tail -n 15 "$log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
}

write_conf() {
  local fsid=$1
  cat >"$CONF" <<EOF
$MARKER
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$MON_PORT
public_addr = 127.0.0.1
# No authentication: nothing may listen beyond loopback.
cluster_addr = 127.0.0.1
ms_bind_msgr1 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = $STATE_DIR/keyring
run_dir = $STATE_DIR/run
pid_file = $STATE_DIR/run/\$name.pid
admin_socket = $STATE_DIR/run/\$name.asok
log_file = $STATE_DIR/log/\$name.log
mon_cluster_log_file = $STATE_DIR/log/cluster.log
crash_dir = $STATE_DIR/crash
# One OSD holds one copy of everything.
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
# radosgw creates 7 pools at first start: 8 placement groups each stays far below mon_max_pg_per_osd (250).
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off

[mon]
mon_data = $STATE_DIR/mon
mon_allow_pool_delete = true
# Each pool radosgw creates waits for a map update, proposed once a second by default: 7 pools cost 14 s.
paxos_propose_interval = 0.1
# A test machine's disk is often fuller than a production monitor's (warns below 30 % free, stops below 5 %).
mon_data_avail_warn = 2
mon_data_avail_crit = 1
mon_warn_on_insecure_global_id_reclaim_allowed = false

[osd]
osd_data = $STATE_DIR/osd
osd_objectstore = bluestore
# bluestore on a sparse file: memstore keeps every byte in RAM (6.3 GB RSS after 1.7 GB written).
bluestore_block_create = true
bluestore_block_size = $((SIZE_GIB * 1024 * 1024 * 1024))
# The default target (4 GiB) lets the caches grow past what a test machine can spare.
osd_memory_target = 939524096

[client.rgw]
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw_data = $STATE_DIR/rgw
# radosgw asks for an encrypted monitor session by default, which needs cephx: without it the monitor refuses it.
ms_mon_client_mode = crc
# Overwritten and deleted objects' space comes back after 2 h by default: repeated test and benchmark runs
# would fill the OSD first.
rgw_gc_obj_min_wait = 60
rgw_gc_processor_period = 60
EOF
}

cmd_install() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "${PACKAGES[*]} already installed"
    return
  fi
  [ "$(id -u)" = 0 ] || die "install needs root (apt-get)"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

cmd_start() {
  [ "$(id -u)" = 0 ] || die "start needs root (the Ceph daemons run as root here)"
  local tool
  for tool in ceph ceph-authtool ceph-mon ceph-osd radosgw radosgw-admin monmaptool curl; do
    command -v "$tool" >/dev/null || die "\`$tool\` not found; run \`$0 install\` first"
  done

  local alive
  alive=$(running_daemons | tr '\n' ' ')
  if [ -n "$alive" ]; then
    if is_ours && read_client_settings && s3_request GET / 2>/dev/null; then
      say "already running at $ENDPOINT (state in $STATE_DIR)"
      return 0
    fi
    die "daemons ${alive}are running from $STATE_DIR but S3 does not answer at $ENDPOINT; run \`$0 stop\` first"
  fi
  if [ -e "$STATE_DIR" ]; then
    is_ours || die "$STATE_DIR exists and is not a local-s3 state directory; choose another --dir"
    say "removing the stale state of a previous run in $STATE_DIR"
    rm -rf "$STATE_DIR"
  fi
  local port
  for port in "$RGW_PORT" "$MON_PORT"; do
    ! port_in_use "$port" || die "127.0.0.1:$port is already in use; choose another --port / --mon-port"
  done

  local started=$SECONDS
  mkdir -p "$STATE_DIR"/{mon,osd,rgw,run,log,crash}
  chmod 700 "$STATE_DIR"
  local fsid osd_uuid
  fsid=$(</proc/sys/kernel/random/uuid)
  osd_uuid=$(</proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  # Random keys, kept only in the state directory: any local user can reach the loopback port.
  ACCESS_KEY=$(head -c 15 /dev/urandom | base32)
  SECRET_KEY=$(head -c 30 /dev/urandom | base64 | tr '+/' '-_')
  printf 'ENDPOINT=%s\nACCESS_KEY=%s\nSECRET_KEY=%s\n' "$ENDPOINT" "$ACCESS_KEY" "$SECRET_KEY" \
    >"$STATE_DIR/client.env"
  # With auth off the daemons never check keys, but mkfs still reads a keyring.
  ceph-authtool --create-keyring "$STATE_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null

  trap 'say "start failed; daemons stopped, logs kept in $STATE_DIR/log"; stop_daemons' ERR

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$STATE_DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$STATE_DIR/monmap"
  ceph-mon -c "$CONF" -i a 2>>"$STATE_DIR/log/startup.log"
  wait_until "$TIMEOUT" "the monitor answering" "$STATE_DIR/log/mon.a.log" ceph_cli mon stat

  ceph_cli osd new "$osd_uuid" 0 >/dev/null
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$STATE_DIR/log/osd.0.mkfs.log" 2>&1 ||
    { say "OSD mkfs failed:"; tail -n 15 "$STATE_DIR/log/osd.0.mkfs.log" >&2; false; }
  ceph-osd -c "$CONF" -i 0 2>>"$STATE_DIR/log/startup.log"
  wait_until "$TIMEOUT" "the OSD coming up" "$STATE_DIR/log/osd.0.log" osd_up

  radosgw -c "$CONF" -n client.rgw 2>>"$STATE_DIR/log/startup.log"
  # radosgw answers HTTP once it has created its zone and pools; radosgw-admin run before that would race it
  # to create them.
  wait_until "$TIMEOUT" "radosgw answering on $ENDPOINT" "$STATE_DIR/log/client.rgw.log" \
    curl --silent --max-time 5 --output /dev/null "$ENDPOINT/"
  timeout 60 radosgw-admin -c "$CONF" user create --uid=statesnap --display-name="statesnap local" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  wait_until "$TIMEOUT" "a signed S3 request to $ENDPOINT succeeding" "$STATE_DIR/log/client.rgw.log" \
    s3_request GET /
  local bucket
  for bucket in "${BUCKETS[@]}"; do
    s3_request PUT "/$bucket" || { say "could not create bucket \`$bucket\`"; false; }
  done
  trap - ERR
  say "ready at $ENDPOINT in $((SECONDS - started)) s (state and logs in $STATE_DIR)"
}

osd_up() { ceph_cli osd dump 2>/dev/null | grep -q '^osd\.0 up'; }

# SIGKILL: the state is deleted or kept only for its logs, so a clean shutdown (seconds) buys nothing.
stop_daemons() {
  local daemon pid pids=()
  for daemon in "${DAEMONS[@]}"; do
    pid=$(pid_of "$daemon") || continue
    kill -KILL "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    while is_alive "$pid"; do sleep 0.1; done
  done
}

cmd_stop() {
  if [ ! -e "$STATE_DIR" ]; then
    say "not running (no $STATE_DIR)"
    return 0
  fi
  is_ours || die "$STATE_DIR is not a local-s3 state directory; not touching it"
  stop_daemons
  rm -rf "$STATE_DIR"
  say "stopped; removed $STATE_DIR"
}

cmd_status() {
  local daemon pid state=0
  if ! is_ours; then
    say "not running (no state in $STATE_DIR)"
    return 3
  fi
  for daemon in "${DAEMONS[@]}"; do
    if pid=$(pid_of "$daemon"); then
      echo "$daemon running, pid $pid, $(awk '/^VmRSS/ {print $2 / 1024 " MiB RSS"}' "/proc/$pid/status")"
    else
      echo "$daemon not running"
      state=3
    fi
  done
  if read_client_settings && s3_request GET / 2>/dev/null; then
    echo "S3 answers at $ENDPOINT"
  else
    echo "S3 does not answer at $ENDPOINT"
    state=3
  fi
  return $state
}

cmd_env() {
  if ! is_ours || ! read_client_settings; then
    die "not started (no state in $STATE_DIR); run \`$0 start\` first"
  fi
  printf 'export AWS_ENDPOINT_URL=%q\n' "$ENDPOINT"
  printf 'export AWS_ACCESS_KEY_ID=%q\n' "$ACCESS_KEY"
  printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$SECRET_KEY"
  printf 'export AWS_REGION=%q\n' "$REGION"
}

"cmd_$COMMAND"
