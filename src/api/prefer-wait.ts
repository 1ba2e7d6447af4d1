/**
 * RFC 7240 `Prefer: wait=N`: how many seconds the client will wait for a final answer.
 * Returns 0 when it did not ask; never more than `maxSeconds`.
 */
export function preferredWaitSeconds(header: string | undefined, maxSeconds: number): number {
  if (!header) return 0;
  const match = /(?:^|[,;\s])wait\s*=\s*"?(\d{1,6})"?(?:$|[,;\s])/i.exec(header);
  if (!match) return 0;
  return Math.min(Number(match[1]), maxSeconds);
}
