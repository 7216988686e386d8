import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { type SshdHarness, ssh, startTestSshd } from "../../shared/test/sshd-harness.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";

let h: ApiHarness;
let w: WorkerHarness;
let s: SshdHarness;
let shortId: string;
let sshPassword: string;

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h);
  s = await startTestSshd(h);
  const admin = await h.adminToken();
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  shortId = res.body.host.short_id;
  expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");
  const rot = await h.request("POST", `/v1/admin/hosts/${res.body.host.id}/rotate-ssh-password`, { token: admin });
  sshPassword = rot.body.ssh_password;
});
afterAll(async () => {
  await s?.stop();
  await w?.stop();
  removeInstanceObjects(h.prefix);
  await h?.close();
});

describe("ssh proxy smoke", () => {
  it("logs in with the host password and runs a command", async () => {
    const r = await ssh(s, { login: shortId, password: sshPassword, args: ["id -un; exit 7"] });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("workspace");
    expect(r.code).toBe(7);
  });

  it("refuses a wrong password", async () => {
    const r = await ssh(s, { login: shortId, password: "wrong-password", args: ["true"] });
    expect(r.code).toBe(255);
  });
});
