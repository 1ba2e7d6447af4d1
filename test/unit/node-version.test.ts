import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SUPPORTED_NODE_RANGE, isSupportedNode, unsupportedNodeMessage } from '../../src/node-version.js';
import { ROOT } from '../support/test-env.js';

describe('the Node version check of the CLI', () => {
  it.each([
    ['20.20.2', false],
    ['v18.19.0', false],
    ['22.11.0', false],
    ['22.12.0', true],
    ['22.21.1', true],
    ['23.11.0', false],
    ['24.0.0', true],
    ['v24.21.0', true],
    ['26.1.0', true],
  ])('When the Node is %s, then supported is %s', (version, supported) => {
    expect(isSupportedNode(version)).toBe(supported);
  });

  it("When package.json's engines change, then the check changes with them", () => {
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(manifest.engines.node).toBe(SUPPORTED_NODE_RANGE);
  });

  it('When the Node is too old, then one line names it, the range, and two commands with the same arguments', () => {
    const message = unsupportedNodeMessage('20.20.2', ['apikey', 'create', '--name', "Ann's key", '--scopes', 'admin']);
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toContain('Node 20.20.2');
    expect(message).toContain('^22.12.0 || >=24');
    expect(message).toContain(`npx node dist/cli.js apikey create --name 'Ann'\\''s key' --scopes admin`);
    expect(message).toContain(`npm run cli -- apikey create --name 'Ann'\\''s key' --scopes admin`);
  });
});
