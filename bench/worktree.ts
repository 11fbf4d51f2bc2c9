/**
 * Another commit's code for a baseline measured in the same run: a detached `git worktree` of it in a
 * temporary directory, with this checkout's node_modules linked in (so nothing is installed), removed
 * again at dispose, when the scenario fails, and at exit when the run is interrupted.
 */
import { mkdtempSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dir, '..');

/** A checkout of one commit; `dir` holds its source tree. */
export interface Worktree extends AsyncDisposable {
  readonly commit: string;
  readonly dir: string;
}

function git(args: readonly string[]): { ok: boolean; text: string } {
  const result = Bun.spawnSync(['git', ...args], { cwd: root, stdout: 'pipe', stderr: 'pipe' });
  return { ok: result.success, text: (result.success ? result.stdout : result.stderr).toString().trim() };
}

/** Checks `commit` out into a fresh temporary directory; throws with git's message if it cannot. */
export function addWorktree(commit: string): Worktree {
  const dir = mkdtempSync(join(tmpdir(), `pgws-bench-${commit}-`));
  const modules = join(dir, 'node_modules');
  let removed = false;
  // Synchronous, so it can also run from an 'exit' listener (run.ts exits on Ctrl-C after its cleanups).
  const remove = () => {
    if (removed) return;
    removed = true;
    process.off('exit', remove);
    // The link first, so nothing that removes the tree can reach this checkout's node_modules through it.
    try {
      unlinkSync(modules);
    } catch {}
    // Removes the directory and git's record of it; the rmSync is for a directory git never took on.
    git(['worktree', 'remove', '--force', dir]);
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', remove);
  const added = git(['worktree', 'add', '--detach', dir, commit]);
  if (!added.ok) {
    remove();
    throw new Error(`cannot check out ${commit} for the baseline: ${added.text}`);
  }
  try {
    symlinkSync(join(root, 'node_modules'), modules, 'dir');
  } catch (error) {
    remove();
    throw error;
  }
  return { commit, dir, [Symbol.asyncDispose]: async () => remove() };
}
