import { describe, expect, it } from "vitest";
import { forwardRequestHeaders, forwardResponseHeaders, serialiseHeaders } from "./headers.js";
import { cookieValue, parseVncPath } from "./target.js";

describe("VNC proxy header rules", () => {
  it("strips credentials, Host, forwarding and hop-by-hop headers from requests, and sets Host to the target", () => {
    const out = forwardRequestHeaders(
      [
        ["Host", "api.example.test"],
        ["Authorization", "Bearer secret"],
        ["Cookie", "ccp_vnc=secret"],
        ["Connection", "keep-alive, X-Drop-Me"],
        ["X-Drop-Me", "1"],
        ["Keep-Alive", "timeout=5"],
        ["Transfer-Encoding", "chunked"],
        ["TE", "trailers"],
        ["Upgrade", "websocket"],
        ["Proxy-Authorization", "Basic x"],
        ["X-Forwarded-For", "1.2.3.4"],
        ["Accept", "text/html"],
        ["Sec-WebSocket-Key", "abc"],
      ],
      "10.0.0.5:6901",
    );
    expect(out).toEqual([
      ["host", "10.0.0.5:6901"],
      ["accept", "text/html"],
      ["sec-websocket-key", "abc"],
    ]);
  });

  it("keeps the upgrade pair for WebSockets", () => {
    const out = forwardRequestHeaders([["Connection", "Upgrade"], ["Upgrade", "websocket"]], "h:1", { upgrade: true });
    expect(out).toEqual([
      ["host", "h:1"],
      ["connection", "Upgrade"],
      ["upgrade", "websocket"],
    ]);
  });

  it("drops the host's Set-Cookie and hop-by-hop headers and adds the security headers once", () => {
    const out = forwardResponseHeaders([
      ["Set-Cookie", "a=1"],
      ["set-cookie", "b=2"],
      ["Content-Type", "text/html"],
      ["Connection", "close"],
      ["Content-Security-Policy", "default-src *"],
      ["X-Content-Type-Options", "whatever"],
      ["Service-Worker-Allowed", "/"],
      ["Referrer-Policy", "unsafe-url"],
    ]);
    expect(out).toEqual([
      ["content-type", "text/html"],
      ["x-content-type-options", "nosniff"],
      ["content-security-policy", "frame-ancestors 'none'"],
      ["referrer-policy", "no-referrer"],
    ]);
  });

  it("never forwards Referer to a host (it once carried a login token, issue 10 §1)", () => {
    const out = forwardRequestHeaders(
      [
        ["Referer", "http://api.example/v1/admin/hosts/x/vnc/?token=eyJsecret"],
        ["Accept", "*/*"],
      ],
      "198.18.0.5:6901",
    );
    expect(out).toEqual([
      ["host", "198.18.0.5:6901"],
      ["accept", "*/*"],
    ]);
  });

  it("cannot be made to inject header lines", () => {
    expect(serialiseHeaders([["x-a", "1\r\nset-cookie: evil=1"]])).toBe("x-a: 1 set-cookie: evil=1\r\n");
  });
});

describe("VNC paths and cookies", () => {
  it("splits the prefix from the path on the host", () => {
    const id = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
    expect(parseVncPath(`/v1/admin/hosts/${id}/vnc/app/ui.js`)).toEqual({
      portal: "admin",
      hostId: id,
      prefix: `/v1/admin/hosts/${id}/vnc/`,
      upstreamPath: "/app/ui.js",
    });
    expect(parseVncPath(`/v1/user/hosts/${id}/vnc/`)?.upstreamPath).toBe("/");
    expect(parseVncPath(`/v1/user/hosts/${id}/vnc`)?.upstreamPath).toBeNull();
    expect(parseVncPath(`/v1/user/hosts/${id}/vncx`)).toBeNull();
    expect(parseVncPath(`/v1/other/hosts/${id}/vnc/`)).toBeNull();
    expect(parseVncPath(`/v1/admin/hosts/${id}`)).toBeNull();
  });

  it("reads one cookie out of a Cookie header", () => {
    expect(cookieValue("a=1; ccp_vnc=tok.en; b=2", "ccp_vnc")).toBe("tok.en");
    expect(cookieValue("xccp_vnc=1", "ccp_vnc")).toBeUndefined();
    expect(cookieValue(undefined, "ccp_vnc")).toBeUndefined();
  });
});
