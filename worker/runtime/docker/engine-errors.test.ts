import { describe, expect, it } from "vitest";
import { isEngineDown } from "./engine-errors.js";

describe("isEngineDown (docs/engines.md#failures)", () => {
  it("takes connection failures and an unverifiable TLS peer for an engine that is gone", () => {
    for (const code of ["ECONNREFUSED", "ENOENT", "EHOSTUNREACH", "EINVAL", "SELF_SIGNED_CERT_IN_CHAIN"]) {
      expect(isEngineDown(Object.assign(new Error(code), { code })), code).toBe(true);
    }
  });

  it("takes a stopping dockerd's closed stores (500 database not open) for the engine going away", () => {
    const err = Object.assign(new Error("(HTTP code 500) server error - get ccp-home-x: database not open"), {
      statusCode: 500,
      json: { message: "get ccp-home-x: database not open" },
    });
    expect(isEngineDown(err)).toBe(true);
  });

  it("leaves the operation's own failures alone", () => {
    expect(isEngineDown(Object.assign(new Error("no such volume"), { statusCode: 404, json: { message: "no such volume" } }))).toBe(false);
    expect(isEngineDown(Object.assign(new Error("oci runtime error"), { statusCode: 500, json: { message: "OCI runtime create failed" } }))).toBe(false);
    // The words alone, in a 4xx, are the client's, not a stopping engine.
    expect(isEngineDown(Object.assign(new Error("x"), { statusCode: 400, json: { message: "database not open" } }))).toBe(false);
  });
});
