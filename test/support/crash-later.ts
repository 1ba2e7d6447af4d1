/**
 * Preloaded into a service process by crash tests (`node --import`): after CRASH_AFTER_MS it fails
 * the way a bug would, with an uncaught exception or an unhandled rejection (CRASH_KIND).
 */
const after = Number(process.env.CRASH_AFTER_MS ?? 5000);
const kind = process.env.CRASH_KIND ?? 'exception';

setTimeout(() => {
  if (kind === 'rejection') void Promise.reject(new Error('injected unhandled rejection'));
  else throw new Error('injected uncaught exception');
}, after);
