/**
 * Readiness waits without a fixed interval (issue 12 "Readiness without sleeping"): the first
 * retry comes after a few milliseconds, each next one after twice as long, up to a cap. A thing
 * that is ready in 40 ms is seen within a few ms of it; one that takes seconds costs a retry per
 * `capMs` at most.
 */
export interface Backoff {
  /** The delay before the next attempt; never beyond `deadline` (a timestamp) when one is given. */
  next(deadline?: number): number;
}

export function backoff(opts: { firstMs?: number; capMs?: number } = {}): Backoff {
  const cap = opts.capMs ?? 100;
  let delay = opts.firstMs ?? 5;
  return {
    next(deadline) {
      const d = Math.min(delay, cap);
      delay = Math.min(delay * 2, cap);
      return deadline === undefined ? d : Math.max(0, Math.min(d, deadline - Date.now()));
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
