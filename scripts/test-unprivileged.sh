#!/usr/bin/env bash
# Runs the safety suites as an unprivileged user (uid/gid 65534, no groups, no capabilities): root bypasses
# the permission checks these suites exist to exercise, so a green root run alone proves little.
# Runs test/backup-safety, test/restore-hostile, test/restore-kill, test/format-metadata (hostile metadata
# files), test/restore-owners (owners and setuid bits), every test file whose name contains "unprivileged",
# and every test titled "...unprivileged..." in the other files. Start it as root, after
# `npm run build`; extra arguments go to vitest.
set -euo pipefail
cd "$(dirname "$0")/.."

UNPRIVILEGED=65534
if [ "$(id -u)" != 0 ]; then
  echo "test-unprivileged: start as root (it switches to uid $UNPRIVILEGED itself)" >&2
  exit 2
fi
if [ ! -f dist/src/cli/main.js ]; then
  echo "test-unprivileged: dist/ is missing; run npm run build first" >&2
  exit 2
fi

shopt -s nullglob
suites=(test/backup-safety.test.ts test/restore-hostile.test.ts test/restore-kill.test.ts test/format-metadata.test.ts
  test/restore-owners.test.ts test/*unprivileged*.test.ts)
titled=()
for file in test/*.test.ts; do
  case " ${suites[*]} " in *" $file "*) continue ;; esac
  if grep -qi 'unprivileged' "$file"; then titled+=("$file"); fi
done

# The user gets its own copy of the checkout: the clone may sit below a directory it cannot enter (root's
# home), and vitest writes its cache below node_modules. HOME and TMPDIR are its own too: the tests make
# their trees in the temp directory.
work=$(mktemp -d "${TMPDIR:-/tmp}/statesnap-unprivileged.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/repo" "$work/home" "$work/tmp"
tar --exclude=./.git -cf - . | tar -xf - -C "$work/repo"
chown -R "$UNPRIVILEGED:$UNPRIVILEGED" "$work"

# The S3 server the tests reach (endpoint, region, credentials) is passed on; nothing else of root's
# environment is.
s3_env=()
for name in AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
  if [ -n "${!name:-}" ]; then s3_env+=("$name=${!name}"); fi
done

as_unprivileged() {
  (cd "$work/repo" &&
    setpriv --reuid="$UNPRIVILEGED" --regid="$UNPRIVILEGED" --clear-groups --inh-caps=-all \
      env -i PATH="$PATH" HOME="$work/home" TMPDIR="$work/tmp" LANG="${LANG:-C.UTF-8}" CI="${CI:-}" \
      ${s3_env[@]+"${s3_env[@]}"} "$@")
}

echo "test-unprivileged: uid $(as_unprivileged id -u): ${suites[*]}${titled:+; titles matching unprivileged in ${titled[*]}}"
status=0
as_unprivileged node node_modules/vitest/vitest.mjs run "$@" "${suites[@]}" || status=$?
if [ "${#titled[@]}" -gt 0 ]; then
  as_unprivileged node node_modules/vitest/vitest.mjs run -t '[Uu]nprivileged' "$@" "${titled[@]}" || status=$?
fi
exit "$status"
