import { ServiceError } from "../errors.js";

/**
 * A process-wide bound on expensive work (argon2 verifications: 19 MiB and tens of ms of CPU
 * each). At most `maxActive` run at once and at most `maxQueued` wait; anything beyond is refused
 * at once with 429 (`retry_after` 1), so a flood of logins — from any number of addresses, each
 * still under its own failure limit — cannot take every core and a pile of memory (issue 10 §3).
 */
export class WorkGate {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /** Highest number ever running at once, and how many were refused (read by tests and metrics). */
  readonly stats = { peakActive: 0, refused: 0 };

  constructor(
    private readonly maxActive: number,
    private readonly maxQueued: number,
  ) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.maxActive) {
      if (this.waiting.length >= this.maxQueued) {
        this.stats.refused++;
        throw new ServiceError("rate_limited", "auth_busy", "too many sign-ins in progress; try again shortly", {
          retryAfterSeconds: 1,
        });
      }
      // The slot is handed over by the finishing run (active is not decremented in between).
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.active++;
    this.stats.peakActive = Math.max(this.stats.peakActive, this.active);
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
