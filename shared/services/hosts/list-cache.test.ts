import { describe, expect, it } from "vitest";
import { HostListCache } from "./list-cache.js";

/** The rendered-list cache (docs/architecture.md#read-paths): a body only on a proof that it is current. */
describe("HostListCache", () => {
  it("serves a body for the same snapshot or the same stamp, and nothing else", () => {
    const c = new HostListCache();
    c.set("q", { stamp: "t|1|a:1", snapshot: "t@10:10:", body: Buffer.from("body-1") }, 0);
    const e = c.entry("q", 1)!;
    expect(c.serve(e, { snapshot: "t@10:10:", stamp: null })?.toString()).toBe("body-1");
    expect(c.serve(e, { snapshot: "t@11:11:", stamp: "t|1|a:2" })).toBeUndefined();
    expect(c.serve(e, { snapshot: "t@11:11:", stamp: "t|2|a:1" })).toBeUndefined();
    // A `null` stamp is only ever an answer about the snapshot the entry holds.
    expect(c.serve(e, { snapshot: "t@12:12:", stamp: null })).toBeUndefined();
    expect(c.entry("other", 1)).toBeUndefined();
  });

  it("moves the snapshot forward when the stamp proves the body current in a newer one", () => {
    const c = new HostListCache();
    c.set("q", { stamp: "t|1|a:1", snapshot: "t@10:10:", body: Buffer.from("b") }, 0);
    const e = c.entry("q", 1)!;
    expect(c.serve(e, { snapshot: "t@20:20:", stamp: "t|1|a:1" })?.toString()).toBe("b");
    expect(e.snapshot).toBe("t@20:20:");
    expect(c.serve(e, { snapshot: "t@20:20:", stamp: null })?.toString()).toBe("b");
  });

  it("never serves on a snapshot when none is known (an empty page read in two statements)", () => {
    const c = new HostListCache();
    c.set("q", { stamp: "t|0|", snapshot: undefined, body: Buffer.from("empty") }, 0);
    const e = c.entry("q", 1)!;
    expect(c.serve(e, { snapshot: "", stamp: null })).toBeUndefined();
    expect(c.serve(e, { snapshot: "t@30:30:", stamp: "t|0|" })?.toString()).toBe("empty");
  });

  it("drops an entry after maxAgeMs, and when the clock goes back, whatever it holds", () => {
    const c = new HostListCache({ maxAgeMs: 100 });
    c.set("q", { stamp: "s", snapshot: "n", body: Buffer.from("b") }, 1000);
    expect(c.entry("q", 1100)).toBeDefined();
    expect(c.entry("q", 1101)).toBeUndefined();
    expect(c.size).toBe(0);
    c.set("q", { stamp: "s", snapshot: "n", body: Buffer.from("b") }, 1000);
    expect(c.entry("q", 999)).toBeUndefined();
  });

  it("keeps at most maxEntries, the oldest stored going first", () => {
    const c = new HostListCache({ maxEntries: 2 });
    const v = (body: string) => ({ stamp: "s", snapshot: "n", body: Buffer.from(body) });
    c.set("a", v("A"), 0);
    c.set("b", v("B"), 0);
    c.set("a", v("A2"), 1); // stored again: now the newest
    c.set("c", v("C"), 2);
    expect(c.size).toBe(2);
    expect(c.entry("b", 3)).toBeUndefined();
    expect(c.entry("a", 3)?.body.toString()).toBe("A2");
    expect(c.entry("c", 3)?.body.toString()).toBe("C");
  });
});
