// The options of the commands that copy a live store (`backup`, `snapshot`): what to leave out, how to copy,
// and the progress display, declared once and handed to the library as one options object.

import { readFileSync } from 'node:fs';
import { describeCause, StatesnapError } from '../core/errors.js';
import { DEFAULT_EXCLUDES, parsePatternFile } from '../core/excludes.js';
import type { BackupOptions, UnmatchedPattern } from '../index.js';
import { BaseCommand } from './base-command.js';
import {
  choiceOption,
  listOption,
  negatableFlag,
  pathListOption,
  progressFlag,
  textOption,
  threadsOption,
} from './options.js';
import type { ProgressLine } from './progress-line.js';
import { shellQuote } from './text.js';

/** The patterns of `--exclude-from` files, in order. */
function readPatternFiles(files: readonly string[]): string[] {
  return files.flatMap((file) => {
    try {
      return parsePatternFile(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new StatesnapError(
        'ERR_INVALID_OPTION',
        `cannot read --exclude-from file ${file}: ${describeCause(error)}`,
        { path: file, cause: error },
      );
    }
  });
}

type SourceOptions = Omit<BackupOptions, 'dest' | 'force' | 'dryRun' | 'mkpath' | 'estimate'>;

export abstract class SourceCommand extends BaseCommand {
  abstract source: string;

  exclude = listOption(
    '--exclude',
    'pattern',
    'Leave out paths matching this pattern (repeatable; rules above; !pattern re-includes)',
  );
  include = listOption(
    '--include',
    'pattern',
    'Copy paths matching this pattern even when an exclude pattern matches them (repeatable)',
  );
  excludeFrom = pathListOption(
    '--exclude-from',
    'file',
    'Read exclude patterns from a file: one per line, # comments and blank lines ignored (repeatable)',
  );
  defaultExcludes = negatableFlag(
    '--default-excludes',
    `Also copy the in-flight temp files (${DEFAULT_EXCLUDES.join(', ')}) excluded by default`,
  );
  categories = listOption(
    '--category',
    'path',
    'A folder counted into the manifest sections (repeatable; default: the Oxios categories)',
  );
  appVersion = textOption('--app-version', 'version', "The manifest's oxios_version (default: statesnap's)");
  threads = threadsOption();
  sync = negatableFlag('--sync', 'Do not flush to disk before publishing (for throwaway copies)');
  onFileError = choiceOption(
    '--on-file-error',
    ['warn', 'abort'],
    'warn',
    'An unreadable source file: warn (skip it, exit 3) or abort the backup',
  );
  progress = progressFlag();

  /** The library options these flags set, with the run's signal, progress and warnings. */
  protected sourceOptions(progress: ProgressLine): SourceOptions {
    return {
      source: this.source,
      exclude: [...(this.exclude ?? []), ...readPatternFiles(this.excludeFrom ?? [])],
      include: this.include,
      defaultExcludes: this.defaultExcludes,
      categories: this.categories,
      appVersion: this.appVersion,
      threads: this.threads,
      sync: this.sync,
      onFileError: this.onFileError,
      signal: this.interrupt.signal,
      onProgress: progress.listener(),
      onWarning: this.reportWarning(),
    };
  }

  /** Patterns that matched nothing: most likely a typo, never an error. */
  protected noteUnmatched(result: { unmatchedPatterns: UnmatchedPattern[]; source: string }): void {
    for (const { pattern, kind } of result.unmatchedPatterns) {
      this.note(`${kind} pattern ${shellQuote(pattern)} matched nothing in ${result.source}`);
    }
  }
}
