// The import structure statesnap keeps (README, "Architecture"), checked by `npm run lint`.
// Layers, low to high: core ← format, s3 ← read ← backup, restore, demo (the stages) ← snapshot (repositories of
// backups) ← cli (with src/index.ts, the public facade). A folder imports only from layers below it, never from a
// sibling at its own layer: format (what is stored) and s3 (where it is stored) know nothing of each other.

/** Folders a layer must not import: every layer above it, and the stages beside it. */
const ABOVE = {
  core: ['format', 's3', 'read', 'backup', 'restore', 'demo', 'snapshot', 'cli'],
  format: ['s3', 'read', 'backup', 'restore', 'demo', 'snapshot', 'cli'],
  s3: ['format', 'read', 'backup', 'restore', 'demo', 'snapshot', 'cli'],
  read: ['backup', 'restore', 'demo', 'snapshot', 'cli'],
  backup: ['restore', 'demo', 'snapshot', 'cli'],
  restore: ['backup', 'demo', 'snapshot', 'cli'],
  demo: ['backup', 'restore', 'snapshot', 'cli'],
  snapshot: ['cli'],
};

const layerRules = Object.entries(ABOVE).map(([layer, above]) => ({
  name: `layer-${layer}`,
  comment: `src/${layer}/ imports only from the layers below it (${above.join(', ')} are not)`,
  severity: 'error',
  from: { path: `^src/${layer}/` },
  to: { path: [`^src/(${above.join('|')})/`, '^src/index\\.ts$', '^bench/', '^workers/'] },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-cycles',
      comment: 'no module reaches itself through its imports',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'workers-import-only-node-and-the-protocol',
      comment:
        'code in workers/ runs in worker threads: node:*, src/core/protocol.ts, the change rule and the tar codec only',
      severity: 'error',
      from: { path: '^workers/' },
      to: { dependencyTypesNot: ['core'], pathNot: '^src/(core/protocol|core/change-rule|format/tar)\\.ts$' },
    },
    {
      name: 'change-rule-is-pure',
      comment: 'the change rule runs in the workers and on the main thread: it imports only the protocol',
      severity: 'error',
      from: { path: '^src/core/change-rule\\.ts$' },
      to: { pathNot: '^src/core/protocol\\.ts$' },
    },
    {
      name: 'protocol-is-plain-data',
      comment: 'the worker protocol and the tar codec import nothing: both sides of the thread boundary load them',
      severity: 'error',
      from: { path: '^src/(core/protocol|format/tar)\\.ts$' },
      to: { path: '.' },
    },
    {
      name: 's3-client-loaded-dynamically',
      comment: 'the AWS SDK takes ~300 ms to load: outside src/s3/ the client is reached only with import()',
      severity: 'error',
      from: { pathNot: '^src/s3/' },
      to: { path: '^src/s3/client\\.ts$', dynamic: false, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'sdk-only-in-the-s3-client',
      comment: 'one module talks to the AWS SDK, so its settings and error mapping hold everywhere',
      severity: 'error',
      from: { path: '^(src|workers|bench)/', pathNot: '^src/s3/client\\.ts$' },
      to: { path: 'node_modules/@aws-sdk/' },
    },
    {
      name: 'bench-only-from-the-bench-command',
      comment: 'nothing in src/ loads the benchmark suite, except `statesnap bench` when it runs',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/commands/bench\\.ts$' },
      to: { path: ['^bench/', 'node_modules/tinybench/'] },
    },
    {
      name: 'bench-loaded-dynamically',
      comment: 'the bench command loads the suite with import() inside its run(), so no other command loads it',
      severity: 'error',
      from: { path: '^src/cli/commands/bench\\.ts$' },
      to: { path: '^bench/', dynamic: false },
    },
    {
      name: 'bench-uses-the-cli-only-for-its-case-ids',
      comment: 'the suite stands apart from the commands; it shares only the case ids the help lists',
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^src/cli/', pathNot: '^src/cli/bench-cases\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
