import { type FormEvent, useEffect, useState } from "react";
import { api, describeError, getSession } from "../api";
import {
  Badge,
  ConfirmButton,
  CopyField,
  Dialog,
  ErrorMessage,
  Loading,
  Notice,
  type ProgressTask,
  SecretOnce,
  TaskProgress,
  Time,
  useResource,
} from "../components";
import { type LiveTask, useLive, useLiveReload } from "../live";
import { Link, usePageTitle } from "../router";
import { type EgressIp, type HostDetail, isTerminal, type Task, type TaskStatus } from "../types";
import { AttestationTimeline } from "./admin/AttestationTimeline";
import { IdlePolicyCard } from "./admin/IdlePolicy";
import { RecordingPolicyCard } from "./Sessions";

type Portal = "admin" | "user";

/**
 * Open the host's desktop through the VNC proxy (docs/api.md#vnc-proxy, issue 10 §1) in a separate
 * browsing context. The login token never goes into a URL or cookie: `POST …/vnc/session` (with
 * the bearer header) answers a one-time URL, whose ticket the proxy trades for an HttpOnly
 * desktop-session cookie scoped to that host's path, redirecting to the bare prefix at once.
 * The tab is opened inside the click (popup blockers allow that), loses its opener before it
 * loads anything — the desktop page is content served by the host, untrusted — and is sent to
 * the one-time URL once the API answered.
 */
export async function openDesktop(portal: Portal, hostId: string): Promise<void> {
  if (!getSession()) return;
  const tab = window.open("about:blank", "_blank");
  if (!tab) return;
  tab.opener = null;
  try {
    const { body } = await api.post<{ url: string; expires_at: string }>(`/v1/${portal}/hosts/${hostId}/vnc/session`);
    tab.location.replace(body.url);
  } catch (err) {
    tab.close();
    window.alert(describeError(err));
  }
}

type TrackedTask = ProgressTask & { status: TaskStatus; created_at: string };

const rank = (status: string) => (status === "pending" ? 0 : status === "running" ? 1 : 2);

/**
 * The task to show: the newest of the host, and for one task the most advanced state seen
 * (a detail reload may answer a little behind the live stream). Fields an update lacks (the
 * portal's last_task has no steps) are kept from what was shown.
 */
function pickTask(cur: TrackedTask | null, next: TrackedTask): TrackedTask {
  if (!cur) return next;
  if (next.id !== cur.id) return next.created_at > cur.created_at || (next.created_at === cur.created_at && next.id > cur.id) ? next : cur;
  if (rank(next.status) < rank(cur.status)) return cur;
  if (rank(next.status) === rank(cur.status) && next.progress_percent < cur.progress_percent) return cur;
  return { ...cur, ...next, steps: next.steps && next.steps.length ? next.steps : cur.steps };
}

export function HostDetailPage({ id, portal }: { id: string; portal: Portal }) {
  const base = portal === "admin" ? `/v1/admin/hosts/${id}` : `/v1/user/hosts/${id}`;
  const detail = useResource((signal) => api.get<HostDetail>(base, signal), [base]);
  const [removed, setRemoved] = useState(false);
  const [task, setTask] = useState<TrackedTask | null>(null);
  const [note, setNote] = useState<string | undefined>(undefined);
  const [secret, setSecret] = useState<string | null>(null);
  const d = detail.data;
  usePageTitle(d ? `Host ${d.host.short_id}` : "Host");

  // The latest task of this host: from the detail's last_task (steps from the task endpoint for
  // the admin), then live task events; polling (stream down) reloads the detail.
  const lastTask = d?.last_task ?? null;
  useEffect(() => {
    if (!lastTask) return;
    setTask((cur) => pickTask(cur, lastTask));
    if (portal === "admin") {
      const ctrl = new AbortController();
      api
        .get<{ task: Task }>(`/v1/admin/tasks/${lastTask.id}`, ctrl.signal)
        .then((r) => setTask((cur) => pickTask(cur, r.task)))
        .catch(() => {});
      return () => ctrl.abort();
    }
  }, [lastTask?.id, lastTask?.status, lastTask?.progress_percent, portal]);

  useLive((m) => {
    if (m.type === "task" && m.data.host_id === id) {
      const t: LiveTask = m.data;
      setTask((cur) => pickTask(cur, t));
    } else if (m.type === "host" && m.data.id === id) {
      const status = m.data.status;
      detail.setData((cur) => (cur ? { ...cur, host: { ...cur.host, status } } : cur));
    } else if (m.type === "host_removed" && m.data.id === id) {
      setRemoved(true);
    }
  });
  // Reload the rest (egress, last_task, desired state) when a task of this host ends.
  useLiveReload(detail.reload, (m) => (m.type === "task" && m.data.host_id === id && isTerminal(m.data.status)) || (m.type === "host" && m.data.id === id));

  const track = (taskId: string, kind: string) => {
    setTask((cur) => pickTask(cur, {
      id: taskId,
      kind,
      status: "pending",
      progress_percent: 0,
      progress_message: "queued",
      error_code: null,
      error_message: null,
      steps: [],
      created_at: new Date().toISOString(),
    }));
  };

  const listPath = portal === "admin" ? "/admin/hosts" : "/portal";
  if (removed) {
    return (
      <section>
        <h1>Host deleted</h1>
        <p>This host no longer exists.</p>
        <Link to={listPath}>Back to {portal === "admin" ? "hosts" : "your hosts"}</Link>
      </section>
    );
  }
  if (detail.error && !d) {
    return (
      <section>
        <h1>Host</h1>
        <ErrorMessage error={detail.error} />
        <Link to={listPath}>Back</Link>
      </section>
    );
  }
  if (!d) return <Loading />;
  const h = d.host;
  const running = h.status === "running";
  const deleting = h.status === "deleting";

  return (
    <section>
      <p className="breadcrumbs">
        <Link to={listPath}>{portal === "admin" ? "Hosts" : "My host"}</Link> / <span className="mono">{h.short_id}</span>
      </p>
      <div className="page-head">
        <h1>
          Host <span className="mono">{h.short_id}</span> <Badge value={h.status} label="Host status" />
          {h.image_outdated ? (
            <>
              {" "}
              <Badge value="outdated" label="Image" />
            </>
          ) : null}
        </h1>
        <div className="button-row">
          <button type="button" className="primary" disabled={!running} onClick={() => void openDesktop(portal, d.host.id)} aria-describedby="desktop-hint">
            Open desktop
          </button>
        </div>
      </div>
      <p id="desktop-hint" className="hint">
        {running ? "The desktop opens in a new tab." : "The desktop is available while the host is running."}
      </p>
      {note ? <Notice kind="success">{note}</Notice> : null}
      {h.image_outdated ? (
        <Notice kind="warn">
          This host runs an older image than the current one. A rebuild (home kept) moves it to the current image.
        </Notice>
      ) : null}
      <ErrorMessage error={detail.error} />
      {task ? <TaskProgress task={task} title={isTerminal(task.status) ? "Last task" : "Task in progress"} /> : null}

      <div className="grid">
        <section className="card" aria-labelledby="host-props">
          <h2 id="host-props">Details</h2>
          <dl className="props">
            <dt>Owner</dt>
            <dd>{portal === "admin" ? <Link to={`/admin/users/${d.user.id}`}>{d.user.username}</Link> : d.user.username}</dd>
            <dt>Status</dt>
            <dd>
              <Badge value={h.status} />
              {"desired_state" in h ? <span className="muted"> (desired: {h.desired_state})</span> : null}
            </dd>
            <dt>Memory</dt>
            <dd>{h.memory_limit_mb} MiB</dd>
            <dt>CPUs</dt>
            <dd>{h.cpu_limit}</dd>
            <dt>Processes</dt>
            <dd>{h.pids_limit}</dd>
            <dt>Home disk</dt>
            <dd>{h.disk_limit_mb !== null ? `${h.disk_limit_mb} MiB` : "engine default"}</dd>
            <dt>Time zone</dt>
            <dd>{h.timezone}</dd>
            {"image" in h ? (
              <>
                <dt>Image</dt>
                <dd className="mono small-text break">{h.image ?? "—"}</dd>
              </>
            ) : null}
            <dt>Created</dt>
            <dd>
              <Time value={h.created_at} />
            </dd>
          </dl>
          <HostActions portal={portal} id={id} status={h.status} deleting={deleting} onTask={track} onNote={setNote} onSecret={setSecret} />
        </section>
        <section className="card" aria-labelledby="egress-heading">
          <h2 id="egress-heading">Egress</h2>
          {d.egress ? (
            <dl className="props">
              <dt>Label</dt>
              <dd>{d.egress.label}</dd>
              <dt>Exit IP</dt>
              <dd className="mono">{d.egress.ip_address}</dd>
              <dt>Tunnel</dt>
              <dd>{d.egress.tunnel_type}</dd>
              <dt>Health</dt>
              <dd>
                <Badge value={d.egress.health} />
              </dd>
            </dl>
          ) : (
            <p className="muted">No egress IP bound.</p>
          )}
          {portal === "admin" && d.egress ? <AttestationTimeline hostId={id} /> : null}
          {portal === "admin" ? (
            <BindingControls hostId={id} bindingId={"binding_id" in h ? h.binding_id : null} deleting={deleting} onChanged={(msg, taskId) => {
              setNote(msg);
              if (taskId) track(taskId, "host.apply-egress");
              detail.reload();
            }} />
          ) : null}
        </section>
        {portal === "admin" && "always_on" in h ? <IdlePolicyCard key={`${h.id}:${h.updated_at}`} host={h} onSaved={detail.reload} /> : null}
        {portal === "admin" && "session_recording" in h ? (
          <RecordingPolicyCard key={`rec:${h.id}:${h.updated_at}`} kind="host" id={h.id} value={h.session_recording} onSaved={detail.reload} />
        ) : null}
      </div>

      <section className="card" aria-labelledby="access-heading">
        <h2 id="access-heading">Access</h2>
        <p className="hint">Run one of these in a terminal. The entry command asks for your login password and starts the host when needed.</p>
        <CopyField label="Entry command" value={d.access.entry_command} />
        <CopyField label="Bootstrap command" value={d.access.bootstrap_command} />
        <CopyField label="SSH command" value={d.access.ssh_command} />
        {d.access.ssh_host_key ? <CopyField label="SSH host key (proxy)" value={d.access.ssh_host_key} /> : null}
      </section>

      <Dialog open={secret !== null} title="New SSH password" onClose={() => setSecret(null)}>
        {secret ? <SecretOnce label={`SSH password of ${h.short_id}`} value={secret} /> : null}
        <p className="hint">It works at once for new SSH logins; open sessions continue.</p>
        <div className="actions">
          <button type="button" className="primary" onClick={() => setSecret(null)}>
            Done
          </button>
        </div>
      </Dialog>
    </section>
  );
}

function HostActions(props: {
  portal: Portal;
  id: string;
  status: string;
  deleting: boolean;
  onTask: (taskId: string, kind: string) => void;
  onNote: (msg: string) => void;
  onSecret: (s: string) => void;
}) {
  const { portal, id, deleting } = props;
  const base = portal === "admin" ? `/v1/admin/hosts/${id}` : `/v1/user/hosts/${id}`;
  const [rebuildOpen, setRebuildOpen] = useState(false);
  const [deleteOpen, setDeleteOpen] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);

  const simple = async (op: "start" | "stop") => {
    setBusy(true);
    setError(undefined);
    try {
      const r = await api.post<{ task_id: string }>(`${base}/${op}`);
      props.onTask(r.body.task_id, `host.${op}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div>
      <ErrorMessage error={error} />
      <div className="button-row" role="group" aria-label="Host actions">
        {portal === "admin" ? (
          <>
            <button type="button" onClick={() => void simple("start")} disabled={busy || deleting}>
              Start
            </button>
            <button type="button" onClick={() => void simple("stop")} disabled={busy || deleting}>
              Stop
            </button>
          </>
        ) : null}
        <button type="button" onClick={() => setRebuildOpen(true)} disabled={deleting}>
          Rebuild…
        </button>
        {portal === "admin" ? (
          <>
            <ConfirmButton
              label="Rotate SSH password"
              title="Rotate SSH password"
              disabled={deleting}
              message={<p>Generate a new SSH password for this host? The old one stops working for new logins at once.</p>}
              action={async () => {
                const r = await api.post<{ ssh_password: string }>(`${base}/rotate-ssh-password`);
                props.onSecret(r.body.ssh_password);
              }}
            />
            <button type="button" className="danger" onClick={() => setDeleteOpen(true)}>
              Delete…
            </button>
          </>
        ) : null}
      </div>
      <RebuildDialog
        open={rebuildOpen}
        base={base}
        onClose={() => setRebuildOpen(false)}
        onDone={(taskId) => {
          props.onTask(taskId, "host.rebuild");
          props.onNote("Rebuild requested.");
        }}
      />
      {portal === "admin" ? (
        <DeleteHostDialog
          open={deleteOpen}
          base={base}
          onClose={() => setDeleteOpen(false)}
          onDone={(taskId) => {
            props.onTask(taskId, "host.delete");
            props.onNote("Deletion requested.");
          }}
        />
      ) : null}
    </div>
  );
}

function RebuildDialog(props: { open: boolean; base: string; onClose: () => void; onDone: (taskId: string) => void }) {
  const [mode, setMode] = useState<"preserve-home" | "wipe-home">("preserve-home");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const r = await api.post<{ task_id: string }>(`${props.base}/rebuild`, { mode });
      props.onDone(r.body.task_id);
      props.onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={props.open} title="Rebuild host" onClose={props.onClose}>
      <form onSubmit={submit}>
        <ErrorMessage error={error} />
        <p>The container is destroyed and recreated from the current image. Running programs stop.</p>
        <fieldset>
          <legend>Home directory</legend>
          <label className="radio">
            <input type="radio" name="mode" value="preserve-home" checked={mode === "preserve-home"} onChange={() => setMode("preserve-home")} />
            Keep the home directory (default)
          </label>
          <label className="radio">
            <input type="radio" name="mode" value="wipe-home" checked={mode === "wipe-home"} onChange={() => setMode("wipe-home")} />
            Wipe the home directory (all files are lost)
          </label>
        </fieldset>
        <div className="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" className={mode === "wipe-home" ? "danger" : "primary"} disabled={busy}>
            {busy ? "Requesting…" : "Rebuild"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function DeleteHostDialog(props: { open: boolean; base: string; onClose: () => void; onDone: (taskId: string) => void }) {
  const [keepHome, setKeepHome] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const r = await api.del<{ task_id: string }>(`${props.base}${keepHome ? "?keep_home=true" : ""}`);
      props.onDone(r.body.task_id);
      props.onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={props.open} title="Delete host" onClose={props.onClose}>
      <form onSubmit={submit}>
        <ErrorMessage error={error} />
        <p>The host and its gateway are removed and its SSH sessions closed.</p>
        <label className="checkbox">
          <input type="checkbox" checked={keepHome} onChange={(e) => setKeepHome(e.target.checked)} /> Keep the home volume
        </label>
        <div className="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" className="danger" disabled={busy}>
            {busy ? "Deleting…" : "Delete host"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** Bind a free egress IP to this host, or remove its binding (admin). */
function BindingControls(props: { hostId: string; bindingId: string | null; deleting: boolean; onChanged: (msg: string, taskId?: string) => void }) {
  const [open, setOpen] = useState(false);
  if (props.bindingId) {
    return (
      <ConfirmButton
        label="Unbind egress"
        title="Unbind egress"
        danger
        disabled={props.deleting}
        message={<p>Remove the binding? A running host loses internet access at once (fail closed).</p>}
        action={async () => {
          await api.del(`/v1/admin/bindings/${props.bindingId}`);
          props.onChanged("Egress unbound.");
        }}
      />
    );
  }
  return (
    <>
      <button type="button" onClick={() => setOpen(true)} disabled={props.deleting}>
        Bind egress IP…
      </button>
      <Dialog open={open} title="Bind egress IP" onClose={() => setOpen(false)}>
        <BindForm
          onCancel={() => setOpen(false)}
          submit={async (egressId) => {
            const r = await api.post<{ binding: { id: string }; task_id?: string }>("/v1/admin/bindings", { host_id: props.hostId, egress_ip_id: egressId });
            setOpen(false);
            props.onChanged("Egress bound.", r.body.task_id);
          }}
        />
      </Dialog>
    </>
  );
}

function BindForm({ onCancel, submit }: { onCancel: () => void; submit: (egressId: string) => Promise<void> }) {
  const options = useResource((signal) => api.get<{ egress_ips: EgressIp[] }>("/v1/admin/egress-ips?status=available&bound=false&limit=200", signal), []);
  const [choice, setChoice] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  if (!options.data) return options.error ? <ErrorMessage error={options.error} /> : <Loading />;
  return (
    <form
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(undefined);
        try {
          await submit(choice);
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <ErrorMessage error={error} />
      {options.data.egress_ips.length === 0 ? (
        <p className="muted">No available, unbound egress IP. Create one under Egress IPs.</p>
      ) : (
        <div className="field">
          <label htmlFor="bind-egress">Egress IP</label>
          <select id="bind-egress" required value={choice} onChange={(e) => setChoice(e.target.value)}>
            <option value="">Choose…</option>
            {options.data.egress_ips.map((x) => (
              <option key={x.id} value={x.id}>
                {x.label} ({x.ip_address})
              </option>
            ))}
          </select>
        </div>
      )}
      <div className="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={busy || !choice}>
          Bind
        </button>
      </div>
    </form>
  );
}
