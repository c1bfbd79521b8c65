// Tests that exist to exercise a real outside dependency (the Oxios oracle build; later an S3 server): where
// it cannot be had they skip saying why, except under CI, where a skip would keep the run green untested.

import type { TestContext } from 'vitest';

/** CI sets `CI` (GitHub Actions and `.ci/run` set `CI=true`). */
export const IN_CI = !['', '0', 'false'].includes(process.env.CI ?? '');

/**
 * Returns when the dependency is there (`unavailable` is null). Otherwise skips the running test with the
 * reason, or under CI fails it with that reason.
 */
export function requireDependency(ctx: TestContext, unavailable: string | null): void {
  if (unavailable === null) return;
  if (IN_CI) throw new Error(`required under CI, but ${unavailable}`);
  ctx.skip(unavailable);
}
