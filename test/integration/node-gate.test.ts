import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/test-env.js';

/**
 * The real build (tsconfig.build.json, into a folder of this test's own) run by the machine's own
 * Node, found on PATH outside node_modules/.bin: on the build machines that is Node 20.
 */
const oldNode = (spawnSync('which', ['-a', 'node'], { encoding: 'utf8' }).stdout ?? '')
  .split('\n')
  .filter((candidate) => candidate && !candidate.includes('node_modules'))
  .find((candidate) => {
    const version = spawnSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    // Chosen by its major version, not by isSupportedNode: a broken check must not hide the test.
    return version !== '' && Number(version.split('.')[0]) < 22;
  });

let dist: string;

beforeAll(() => {
  // Inside the project, so that the build resolves its packages from node_modules as dist/ does.
  mkdirSync(path.join(ROOT, 'node_modules/.cache'), { recursive: true });
  dist = mkdtempSync(path.join(ROOT, 'node_modules/.cache/wallet-dist-'));
  const build = spawnSync(
    process.execPath,
    [
      path.join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      'tsconfig.build.json',
      '--outDir',
      dist,
      '--tsBuildInfoFile',
      path.join(dist, '.tsbuildinfo'),
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  expect(build.status, build.stdout + build.stderr).toBe(0);
}, 120_000);

afterAll(() => rmSync(dist, { recursive: true, force: true }));

function run(node: string, args: string[]) {
  return spawnSync(node, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, DATABASE_URL: 'x' } });
}

describe.skipIf(!oldNode)(`dist/cli.js on the machine's own Node (${oldNode ?? 'none older found'})`, () => {
  it.each(['apikey create --name me --scopes admin', 'start'])(
    'When run as `node dist/cli.js %s`, then it exits 1 with one line naming that Node, the range and the commands that work',
    (shown) => {
      const args = shown.split(' ');
      for (const preload of [[], ['--import', path.join(dist, 'instrumentation.js')]]) {
        const result = run(oldNode!, [...preload, path.join(dist, 'cli.js'), ...args]);
        expect(result.status, result.stderr).toBe(1);
        expect(result.stdout).toBe('');
        const lines = result.stderr.trimEnd().split('\n');
        expect(lines, result.stderr).toHaveLength(1);
        const version = spawnSync(oldNode!, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
        expect(lines[0]).toContain(`Node ${version}`);
        expect(lines[0]).toContain('^22.12.0 || >=24');
        expect(lines[0]).toContain(`npx node dist/cli.js ${shown}`);
        expect(lines[0]).toContain(`npm run cli -- ${shown}`);
      }
    },
  );
});

describe('dist/cli.js on the Node that npm ci installed', () => {
  it('When run with --help, then the check lets it through to the commands', () => {
    const result = run(process.execPath, [path.join(dist, 'cli.js'), '--help']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('apikey');
    expect(result.stdout).toContain('start');
  });
});
