import type { Redis } from "ioredis";
import { redisKey } from "../shared/redis.js";

/** How long a replica's claim on a session slot lives without a refresh (a crashed replica's slots lapse). */
const SLOT_TTL_MS = 60_000;

export interface LiveSession {
  id: string;
  hostId: string;
  userId: string;
  close: (reason: string) => void;
}

/**
 * Live proxied sessions: local ones (to close them on revocation) and a per-host count shared by
 * all replicas through Redis, for SSH_MAX_SESSIONS_PER_HOST.
 */
export class SessionRegistry {
  private readonly live = new Map<string, LiveSession>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(hostId: string) {
    return redisKey(this.prefix, "ssh-sessions", hostId);
  }

  /** Claim a slot for a session on a host; false when the host already has `max` live sessions. */
  async claim(hostId: string, sessionId: string, max: number): Promise<boolean> {
    const now = Date.now();
    const key = this.key(hostId);
    await this.redis.zremrangebyscore(key, 0, now);
    await this.redis.zadd(key, now + SLOT_TTL_MS, sessionId);
    const rank = await this.redis.zcard(key);
    if (rank > max) {
      await this.redis.zrem(key, sessionId);
      return false;
    }
    await this.redis.pexpire(key, SLOT_TTL_MS);
    return true;
  }

  add(s: LiveSession): void {
    this.live.set(s.id, s);
  }

  async remove(s: Pick<LiveSession, "id" | "hostId">): Promise<void> {
    this.live.delete(s.id);
    await this.redis.zrem(this.key(s.hostId), s.id).catch(() => {});
  }

  /** Keep this replica's slots alive. */
  async refresh(): Promise<void> {
    const until = Date.now() + SLOT_TTL_MS;
    for (const s of this.live.values()) {
      await this.redis.zadd(this.key(s.hostId), "XX", until, s.id).catch(() => {});
      await this.redis.pexpire(this.key(s.hostId), SLOT_TTL_MS).catch(() => {});
    }
  }

  closeWhere(pred: (s: LiveSession) => boolean, reason: string): number {
    let n = 0;
    for (const s of [...this.live.values()]) {
      if (pred(s)) {
        s.close(reason);
        n++;
      }
    }
    return n;
  }

  all(): LiveSession[] {
    return [...this.live.values()];
  }
}
