#!/usr/bin/env node
/**
 * The `wallet` command's entry point. It first checks the Node version, importing nothing else:
 * on an older Node the real CLI (commands.ts) would fail on its first import with an error that
 * names neither Node nor a way out (`Promise.withResolvers is not a function`).
 */
import { isSupportedNode, unsupportedNodeMessage } from './node-version.js';

if (!isSupportedNode(process.versions.node)) {
  process.stderr.write(`${unsupportedNodeMessage(process.versions.node, process.argv.slice(2))}\n`);
  process.exit(1);
}

await import('./commands.js');
