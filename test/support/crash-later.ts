/**
 * Preloaded into a service process by crash tests (`node --import`): on SIGWINCH (which the test
 * sends once the process is ready, so no timing is guessed) it fails the way a bug would, with an
 * uncaught exception or an unhandled rejection (CRASH_KIND).
 */
const kind = process.env.CRASH_KIND ?? 'exception';

process.on('SIGWINCH', () => {
  setImmediate(() => {
    if (kind === 'rejection') void Promise.reject(new Error('injected unhandled rejection'));
    else throw new Error('injected uncaught exception');
  });
});
