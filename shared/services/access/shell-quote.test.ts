import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { shellQuote } from "./shell-quote.js";

/** What bash makes of the word: the value it assigns, printed back unchanged. */
const throughBash = (word: string) =>
  execFileSync("bash", ["-c", `v=${word}; printf '%s' "$v"`], { encoding: "utf8" });

describe("shellQuote", () => {
  it("wraps in single quotes and escapes single quotes", () => {
    expect(shellQuote("https://cloud.example.com")).toBe("'https://cloud.example.com'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("")).toBe("''");
  });

  it.each([
    "plain",
    "it's",
    "''",
    "'; rm -rf /; '",
    "$(id)",
    "`id`",
    "${HOME}",
    'back\\slash "double"',
    "new\nline\ttab",
    "*?[a-z]~ !#&|;<>",
    "ünïcødé ✓",
  ])("bash reads %j back verbatim", (value) => {
    expect(throughBash(shellQuote(value))).toBe(value);
  });

  it("refuses NUL, which no shell word can carry", () => {
    expect(() => shellQuote("a\0b")).toThrow();
  });
});
