#!/usr/bin/env bash
# Paired rounds of no-change "snapshots" (and today's full durable backup, for scale) on a fresh journaled
# ext4, each timed with its `sync`:
#   docs/snapshots-measure/link-rounds.sh <mnt> <store-name> <rounds>
# expects <mnt>/<store> (generated) and <mnt>/prev-<store> (`cp -a` of it: the previous backup).
# Destinations are removed outside the timed window; case order rotates every round.
set -euo pipefail
mnt=$1 store=$2 rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
cases=(cp-al rsync-link-dest node-link-1 node-link-2 node-snapshot-1 node-snapshot-2 statesnap-full)
run_case() {
  local name=$1 dest=$mnt/dest-$1
  case $name in
    cp-al) cp -al "$mnt/$store" "$dest" ;;
    rsync-link-dest) rsync -a --exclude '*.tmp' --link-dest="$mnt/prev-$store" "$mnt/$store/" "$dest/" ;;
    node-link-1) node "$here/link-farm.mjs" "$mnt/$store" "$mnt/prev-$store" "$dest" 0 link ;;
    node-link-2) node "$here/link-farm.mjs" "$mnt/$store" "$mnt/prev-$store" "$dest" 2 link ;;
    node-snapshot-1) node "$here/link-farm.mjs" "$mnt/$store" "$mnt/prev-$store" "$dest" 0 snapshot ;;
    node-snapshot-2) node "$here/link-farm.mjs" "$mnt/$store" "$mnt/prev-$store" "$dest" 2 snapshot ;;
    statesnap-full) node "$here/../../dist/src/cli/main.js" backup --quiet "$mnt/$store" "$dest" ;;
  esac
  sync
}
for ((round = 0; round < rounds; round++)); do
  for ((i = 0; i < ${#cases[@]}; i++)); do
    name=${cases[(i + round) % ${#cases[@]}]}
    sync
    /usr/bin/time -f "{\"round\":$round,\"case\":\"$name\",\"wall\":%e,\"user\":%U,\"sys\":%S}" -a -o /dev/stderr \
      bash -c "$(declare -f run_case); mnt=$mnt store=$store here=$here run_case $name" >&2
    rm -rf "$mnt/dest-$name"
    sync
  done
done
