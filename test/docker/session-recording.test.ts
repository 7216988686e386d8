/**
 * Session records and SSH session recording end to end (docs/sessions.md): the real API, a real
 * worker with a real host container, the proxy in-process and the real OpenSSH client on a pty
 * (`ssh -tt`). One host; its recording policy is switched through the admin API between cases.
 */
import { waitUntil } from "../../shared/test/processes.js";
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { type SshdHarness, ssh, sshArgs, sshEnv, startTestSshd } from "../../shared/test/sshd-harness.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";

let h: ApiHarness;
let w: WorkerHarness;
let s: SshdHarness;
let admin: string;
let host: { id: string; shortId: string; password: string };

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h);
  s = await startTestSshd(h);
  admin = await h.adminToken();
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");
  const rot = await h.request("POST", `/v1/admin/hosts/${res.body.host.id}/rotate-ssh-password`, { token: admin });
  host = { id: res.body.host.id, shortId: res.body.host.short_id, password: rot.body.ssh_password };
});
afterAll(async () => {
  await s?.stop();
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

/** A condition polled until it holds, within a deadline (shared/test/processes.ts waitUntil). */
const waitFor = <T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 20_000): Promise<T> =>
  waitUntil(what, ms, async () => (await fn()) || undefined);

async function setPolicy(mode: "off" | "output" | "input" | null) {
  const res = await h.request("PUT", `/v1/admin/hosts/${host.id}/session-recording`, { token: admin, body: { session_recording: mode } });
  expect(res.status, res.text).toBe(200);
}

/** The host's one session that started after `since`, once it has ended. */
async function endedSession(since: string) {
  return waitFor("the session row to end", async () => {
    const res = await h.request("GET", `/v1/admin/sessions?host_id=${host.id}&kind=ssh&open=false&since=${since}`, { token: admin });
    expect(res.status, res.text).toBe(200);
    return res.body.sessions[0] as Record<string, unknown> | undefined;
  });
}

describe("SSH session recording through the proxy", () => {
  it("records an interactive pty session (output and input), tells the user, and closes the session row", async () => {
    await setPolicy("input");
    const since = new Date().toISOString();
    const o = { login: host.shortId, password: host.password };
    const child = spawn("ssh", [...sshArgs(s, o), "-tt", `${host.shortId}@127.0.0.1`], { env: sshEnv(s, o), stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (err += d.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    // A marker only the shell can produce: the typed text and its output differ.
    await waitFor("the shell prompt", async () => out.includes("$"));
    child.stdin.write("echo rec-$((40+2))-marker\r");
    await waitFor("the command's output", async () => out.includes("rec-42-marker"));
    child.stdin.write("exit\r");
    const code = await exited;
    clearTimeout(killer);
    expect(code, `stdout=${out} stderr=${err}`).toBe(0);
    expect(err).toContain("cloud-cli-proxy: this session is recorded (output, input)");

    const row = await endedSession(since);
    expect(row, JSON.stringify(row)).toMatchObject({
      kind: "ssh",
      login: host.shortId,
      method: "password",
      source_ip: "127.0.0.1",
      recording: "input",
      recording_truncated: false,
      has_recording: true,
      open: false,
    });
    expect(["client_closed", "host_closed"]).toContain(row.end_reason);
    expect(row.bytes_in as number).toBeGreaterThan("echo rec-$((40+2))-marker\rexit\r".length - 1);
    expect(row.bytes_out as number).toBeGreaterThan(0);
    expect(row.recording_bytes as number).toBeGreaterThan(0);

    const cast = await h.request("GET", `/v1/admin/sessions/${row.id}/recording`, { token: admin });
    expect(cast.status, cast.text).toBe(200);
    expect(cast.headers.get("content-type")).toBe("application/x-asciicast");
    expect(Buffer.byteLength(cast.text)).toBe(row.recording_bytes);
    const [header, ...events] = cast.text
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2, width: expect.any(Number), height: expect.any(Number), env: { TERM: expect.any(String) } });
    const evs = events as [number, string, string][];
    for (const e of evs) expect(["o", "i", "r"]).toContain(e[1]);
    const output = evs.filter((e) => e[1] === "o").map((e) => e[2]).join("");
    const input = evs.filter((e) => e[1] === "i").map((e) => e[2]).join("");
    expect(output).toContain("rec-42-marker");
    expect(input).toContain("echo rec-$((40+2))-marker\r");
    expect(input).toContain("exit\r");
    // The notice is the user's, not part of the recording.
    expect(output).not.toContain("this session is recorded");
    const times = evs.map((e) => e[0]);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });

  it("with the policy off: no banner, no chunks, the row still records the session", async () => {
    await setPolicy("off");
    const since = new Date().toISOString();
    const r = await ssh(s, { login: host.shortId, password: host.password, args: ["-tt", "echo plain-$((6*7))"] });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("plain-42");
    expect(r.stderr).not.toContain("recorded");
    const row = await endedSession(since);
    expect(row).toMatchObject({ recording: "off", has_recording: false, recording_bytes: 0 });
    expect(row.bytes_out as number).toBeGreaterThan(0);
    const chunks = await h.database.sql<{ n: number }[]>`select count(*)::int as n from session_recording_chunks where session_id = ${row.id as string}`;
    expect(chunks[0]?.n).toBe(0);
    const dl = await h.request("GET", `/v1/admin/sessions/${row.id}/recording`, { token: admin });
    expect(dl.status).toBe(404);
    expect(dl.body.code).toBe("recording_not_found");
  });
});
