// zod, loaded through its CommonJS build. Its ES module entry imports its ~50 locale modules statically, and
// Node 20's ES module loader opens all of a module's imports at once: with `ulimit -n 64` zod alone ran out of
// file descriptors before statesnap could start. `require` reads one file at a time.

import { createRequire } from 'node:module';
import type * as zod from 'zod';

export const z: typeof zod.z = createRequire(import.meta.url)('zod').z;

// The types schemas are described with (`z.infer<typeof Schema>`), under the same name as the value.
export declare namespace z {
  export type infer<T> = zod.z.infer<T>;
  export type ZodError = zod.z.ZodError;
}
