/**
 * Which Node runs this service: the range package.json's `engines` names, checked by hand so that
 * this module imports nothing and runs on any Node that can load an ES module at all.
 */

/** package.json `engines.node`; test/unit/node-version.test.ts keeps the two equal. */
export const SUPPORTED_NODE_RANGE = '^22.12.0 || >=24';

/** True for 22.12 up to (not including) 23, and for 24 and later. */
export function isSupportedNode(version: string): boolean {
  const [major = 0, minor = 0] = version
    .replace(/^v/, '')
    .split('.')
    .map((part) => Number.parseInt(part, 10));
  if (major === 22) return minor >= 12;
  return major >= 24;
}

/** `a b 'c d'`: the arguments as a POSIX shell would need them typed again. */
function shellWords(args: readonly string[]): string {
  return args.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ');
}

/**
 * The one line a too-old Node gets: what was found, what is needed, and two commands that use the
 * Node 24 that `npm ci` installed (node_modules/.bin/node) with the same arguments.
 */
export function unsupportedNodeMessage(version: string, args: readonly string[]): string {
  const rest = args.length > 0 ? ` ${shellWords(args)}` : ' <command>';
  return (
    `wallet: this is Node ${version.replace(/^v/, '')}, but the service needs Node ${SUPPORTED_NODE_RANGE}; ` +
    `run it with the Node that npm ci installed: npx node dist/cli.js${rest}  (or: npm run cli --${rest})`
  );
}
