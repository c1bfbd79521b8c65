#!/usr/bin/env bash
# The package as its users get it: packs it (`prepare` builds dist/), checks what the tarball holds and that
# its types resolve under every TypeScript module resolution (@arethetypeswrong/cli), then installs the
# tarball into an empty project with install scripts off (so nothing is built there) and uses it: the bin,
# import() and require().
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/statesnap-package.XXXXXX")
trap 'rm -rf "$work"' EXIT

npm pack --json --pack-destination "$work" >"$work/pack.json"
tarball="$work/$(node -p "JSON.parse(require('node:fs').readFileSync(process.argv[1], 'utf8'))[0].filename" "$work/pack.json")"

# Built code, its declarations and the package's own files; no sources, tests or build configuration.
unexpected=$(tar -tzf "$tarball" | grep -v -E '^package/(package\.json|README\.md|LICENSE|dist/(src|workers|bench)/.+\.(js|d\.ts|js\.map))$' || true)
if [ -n "$unexpected" ]; then
  printf 'check-package: unexpected files in the tarball:\n%s\n' "$unexpected" >&2
  exit 1
fi
for required in dist/src/index.js dist/src/index.d.ts dist/src/cli/main.js; do
  if ! tar -tzf "$tarball" "package/$required" >/dev/null 2>&1; then
    echo "check-package: the tarball lacks $required" >&2
    exit 1
  fi
done

# statesnap is ESM only: a CommonJS `require()` gets it through require(esm) (Node 20.19+/22.12+) or import().
npx --no-install attw --ignore-rules cjs-resolves-to-esm --format table-flipped "$tarball"

mkdir "$work/app"
echo '{ "name": "statesnap-package-check", "private": true, "type": "module" }' >"$work/app/package.json"
(cd "$work/app" && npm install --no-audit --no-fund --prefer-offline --ignore-scripts "$tarball" >/dev/null)
(cd "$work/app" && ./node_modules/.bin/statesnap demo --quiet "$work/demo")
(cd "$work/app" && node --input-type=module -e \
  "const { backup } = await import('statesnap'); if (typeof backup !== 'function') process.exit(1);")
(cd "$work/app" && node -e "if (typeof require('statesnap').backup !== 'function') process.exit(1);")
echo "check-package: $(basename "$tarball") installs without a build; its bin, import() and require() work"
