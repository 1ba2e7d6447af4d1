/**
 * `work`, or `timeoutError()` once `ms` pass without an answer. The abandoned work goes on and
 * may still fail later; nobody waits for it then, so that failure is swallowed here.
 */
export function within<T>(work: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  work.catch(() => undefined);
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timeoutError()), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
