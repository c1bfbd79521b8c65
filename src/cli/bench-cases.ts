// The case ids `statesnap bench --cases` takes, in the suite's order. They live here, not in bench/, so the
// command's help can list them without loading the suite: only running the command loads bench/.

export const CASE_IDS = [
  'cp-a',
  'statesnap-no-sync',
  'cp-a-sync',
  'cp-a-parallel-sync',
  'statesnap',
  'statesnap-one-file',
  'statesnap-restore',
  'statesnap-threads-1',
  'statesnap-threads-2',
  'statesnap-threads-4',
  'statesnap-threads-8',
  'fs-cp',
  'sequential',
  'fs-extra',
  'rsync-a',
  'statesnap-link-dest',
  'statesnap-link-dest-1pct',
  'snapshot-no-change',
  'rsync-link-dest',
  'cp-al',
  'restic-no-change',
  'tar-pipe',
  's3-snapshot',
  's3-snapshot-no-change',
  's3-restore',
  'restic-s3',
  'du-sb',
  'planner-walk',
] as const;

export type CaseId = (typeof CASE_IDS)[number];
