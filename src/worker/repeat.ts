/**
 * The worker's background loops (sweeper, outbox relay, webhook sweep, cleanup): calls `pass`
 * every `intervalMs`, never two at once; a pass that returns true (it did a full batch) runs
 * again at once. Returns a stop function that also waits for the pass in hand.
 */
export function repeat(intervalMs: number, pass: () => Promise<boolean>, onError: (error: unknown) => void) {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    running = (async () => {
      try {
        while (!stopped && (await pass()));
      } catch (error) {
        onError(error);
      }
      if (!stopped) timer = setTimeout(tick, intervalMs);
    })();
  };
  timer = setTimeout(tick, intervalMs);
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}
