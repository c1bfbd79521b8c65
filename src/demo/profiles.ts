// The names of the generator's store profiles: what `generate` and `bench` offer, known without loading the
// generator itself.

export type StoreProfile = 'oxios' | 'oxios-small' | 'tiny-files' | 'large-files' | 'demo';

export const STORE_PROFILES: readonly StoreProfile[] = [
  'oxios',
  'oxios-small',
  'tiny-files',
  'large-files',
  'demo',
];
