import { describe, expect, it } from "vitest";
import { renderV2rayConfig } from "../../worker/network/v2ray.js";
import { BARE_SOCKS, bareV2rayConfig } from "./egress-bare.js";

describe("bareV2rayConfig", () => {
  const outbound = { type: "shadowsocks" as const, server: "203.0.113.21", server_port: 8388, method: "chacha20-ietf-poly1305", password: "bench-secret" };

  it("keeps the gateway's outbounds and routing and swaps only the inbound for a local socks one", () => {
    const gateway = JSON.parse(renderV2rayConfig(outbound, "203.0.113.21")) as Record<string, unknown>;
    const bare = JSON.parse(bareV2rayConfig(JSON.stringify(gateway))) as Record<string, unknown>;
    expect(bare.outbounds, "the outbound (mark 255 included) is the rendered one").toEqual(gateway.outbounds);
    expect(bare.routing).toEqual(gateway.routing);
    expect(bare.inbounds).toEqual([
      { tag: "socks", listen: "127.0.0.1", port: Number(BARE_SOCKS.split(":")[1]), protocol: "socks", settings: { auth: "noauth", udp: false } },
    ]);
  });
});
