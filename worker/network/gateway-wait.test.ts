import { describe, expect, it } from "vitest";
import type { ExecResult, Runtime } from "../runtime/runtime.js";
import { TaskError } from "../tasks/task-error.js";
import { waitGatewayReady } from "./gateway.js";

/**
 * The gateway readiness wait (docs/egress.md#supervisor): one blocking `ccp-gateway wait` exec,
 * and a back-off poll of `ccp-gateway status` for a gateway image without that command.
 */
const status = (generation: number, s: "starting" | "ready" | "failed") =>
  `${JSON.stringify({ generation, mode: "wireguard", status: s, engine: "none", engine_restarts: 0, ruleset_restores: 0, error: s === "failed" ? "engine_failed" : null })}\n`;

function fakeRuntime(answer: (argv: string[], n: number) => ExecResult) {
  const calls: string[][] = [];
  const runtime = {
    exec: async (_name: string, argv: string[]) => {
      calls.push(argv);
      return answer(argv, calls.length);
    },
  } as unknown as Runtime;
  return { deps: { runtime, config: { GATEWAY_READY_TIMEOUT_SECONDS: 2 } as never }, calls };
}

describe("waitGatewayReady", () => {
  it("one blocking exec that names the generation and the bound", async () => {
    const f = fakeRuntime(() => ({ exitCode: 0, stdout: status(7, "ready"), stderr: "" }));
    expect(await waitGatewayReady(f.deps, "gw", { generation: 7 })).toMatchObject({ generation: 7, status: "ready" });
    expect(f.calls).toEqual([["ccp-gateway", "wait", "7", "2"]]);
  });

  it("a failed generation is tunnel_setup_failed", async () => {
    const f = fakeRuntime(() => ({ exitCode: 0, stdout: status(7, "failed"), stderr: "" }));
    const err = await waitGatewayReady(f.deps, "gw", { generation: 7 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).code).toBe("tunnel_setup_failed");
  });

  it("an image without `wait` falls back to polling status until the generation is ready", async () => {
    const f = fakeRuntime((argv, n) =>
      argv[1] === "wait"
        ? { exitCode: 2, stdout: "", stderr: "usage" }
        : { exitCode: 0, stdout: n < 4 ? status(6, "ready") : status(7, "ready"), stderr: "" },
    );
    expect(await waitGatewayReady(f.deps, "gw", { generation: 7 })).toMatchObject({ generation: 7 });
    expect(f.calls.map((c) => c[1])).toEqual(["wait", "status", "status", "status"]);
  });

  it("not ready within the bound is tunnel_setup_failed", async () => {
    const f = fakeRuntime((argv) => (argv[1] === "wait" ? { exitCode: 1, stdout: status(7, "starting"), stderr: "" } : { exitCode: 0, stdout: status(7, "starting"), stderr: "" }));
    f.deps.config = { GATEWAY_READY_TIMEOUT_SECONDS: 1 } as never;
    const err = await waitGatewayReady(f.deps, "gw", { generation: 7 }).catch((e: unknown) => e);
    expect((err as TaskError).code).toBe("tunnel_setup_failed");
  });
});
