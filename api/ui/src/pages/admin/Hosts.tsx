import { type FormEvent, useState } from "react";
import { api, qs } from "../../api";
import { Badge, ConfirmButton, Dialog, ErrorMessage, Field, fieldError, Loading, Notice, Pagination, Time, useResource } from "../../components";
import { useLive, useLiveReload } from "../../live";
import { Link, navigate, setQuery, useLocation, usePageTitle } from "../../router";
import { type AdminHost, type EgressIp, HOST_STATUSES, type User } from "../../types";

const PAGE = 25;

export function HostsPage() {
  usePageTitle("Hosts");
  const { query } = useLocation();
  const status = query.get("status") ?? "";
  const userId = query.get("user_id") ?? "";
  const offset = Number(query.get("offset") ?? 0) || 0;
  const list = useResource(
    (signal) =>
      api.get<{ hosts: AdminHost[]; total: number; limit: number; offset: number }>(
        `/v1/admin/hosts${qs({ status, user_id: userId, limit: PAGE, offset })}`,
        signal,
      ),
    [status, userId, offset],
  );
  // Status changes arrive live and are patched in place; new or removed hosts reload the page.
  useLive((m) => {
    if (m.type === "host")
      list.setData((d) => (d ? { ...d, hosts: d.hosts.map((h) => (h.id === m.data.id ? { ...h, status: m.data.status } : h)) } : d));
  });
  useLiveReload(
    list.reload,
    (m) =>
      m.type === "host_removed" ||
      (m.type === "host" && !list.data?.hosts.some((h) => h.id === m.data.id)) ||
      // An outdated host back to running after its rebuild: its flag has changed.
      (m.type === "host" && m.data.status === "running" && !!list.data?.hosts.some((h) => h.id === m.data.id && h.image_outdated)),
  );
  const [creating, setCreating] = useState(false);
  const [note, setNote] = useState<string | undefined>(undefined);

  const rebuildOutdated = async () => {
    const { body } = await api.post<{ requested: { task_id: string }[]; skipped: { short_id: string; message: string }[] }>(
      "/v1/admin/hosts/rebuild-outdated",
      {},
    );
    const skipped = body.skipped.map((s) => `${s.short_id}: ${s.message}`).join("; ");
    setNote(`${body.requested.length} rebuild(s) requested${skipped ? `; skipped ${skipped}` : ""}.`);
    list.reload();
  };

  return (
    <section>
      <div className="page-head">
        <h1>Hosts</h1>
        <div className="button-row">
          <ConfirmButton
            label="Rebuild outdated"
            title="Rebuild outdated hosts"
            message={
              <p>
                Every running or stopped host whose image is older than the current one is rebuilt from it, home kept. Stopped hosts are
                stopped again afterwards. Their users are disconnected while it runs.
              </p>
            }
            confirmLabel="Rebuild"
            action={rebuildOutdated}
          />
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            Create host
          </button>
        </div>
      </div>
      {note ? <Notice kind="success">{note}</Notice> : null}
      <form className="filters" aria-label="Filter hosts" onSubmit={(e) => e.preventDefault()}>
        <Field label="Status">
          {(id) => (
            <select id={id} value={status} onChange={(e) => setQuery({ status: e.target.value, offset: undefined })}>
              <option value="">any</option>
              {HOST_STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          )}
        </Field>
        {userId ? (
          <div className="field">
            <span className="label-like">Owner</span>
            <button type="button" className="small" onClick={() => setQuery({ user_id: undefined, offset: undefined })}>
              Clear owner filter
            </button>
          </div>
        ) : null}
      </form>
      <ErrorMessage error={list.error} />
      {!list.data ? (
        <Loading />
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Hosts</caption>
              <thead>
                <tr>
                  <th scope="col">Host</th>
                  <th scope="col">Owner</th>
                  <th scope="col">Status</th>
                  <th scope="col">Egress</th>
                  <th scope="col">Limits</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                {list.data.hosts.length === 0 ? (
                  <tr>
                    <td colSpan={6} className="muted">
                      No hosts match.
                    </td>
                  </tr>
                ) : (
                  list.data.hosts.map((h) => (
                    <tr key={h.id}>
                      <th scope="row">
                        <Link to={`/admin/hosts/${h.id}`} className="mono">
                          {h.short_id}
                        </Link>
                      </th>
                      <td>
                        <Link to={`/admin/users/${h.user_id}`}>{h.username}</Link>
                      </td>
                      <td>
                        <Badge value={h.status} />
                        {h.image_outdated ? (
                          <>
                            {" "}
                            <Badge value="outdated" label="Image" />
                          </>
                        ) : null}
                      </td>
                      <td>{h.egress ? `${h.egress.label} (${h.egress.ip_address})` : <span className="muted">none</span>}</td>
                      <td className="small-text">
                        {h.memory_limit_mb} MiB · {h.cpu_limit} CPU
                      </td>
                      <td>
                        <Time value={h.created_at} />
                      </td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
          <Pagination label="Hosts" total={list.data.total} limit={list.data.limit} offset={list.data.offset} onPage={(o) => setQuery({ offset: o || undefined })} />
        </>
      )}
      <CreateHostDialog open={creating} onClose={() => setCreating(false)} />
    </section>
  );
}

/** Create a host for a user (one host per user), optionally bound to a free egress IP. */
export function CreateHostDialog({ open, onClose, fixedUser }: { open: boolean; onClose: () => void; fixedUser?: User }) {
  return (
    <Dialog open={open} title="Create host" onClose={onClose}>
      {open ? <CreateHostForm onClose={onClose} fixedUser={fixedUser} /> : null}
    </Dialog>
  );
}

function CreateHostForm({ onClose, fixedUser }: { onClose: () => void; fixedUser?: User }) {
  const options = useResource(
    async (signal) => {
      const [users, hosts, egress] = await Promise.all([
        fixedUser ? Promise.resolve({ users: [fixedUser] }) : api.get<{ users: User[] }>("/v1/admin/users?status=active&role=user&limit=200", signal),
        api.get<{ hosts: AdminHost[] }>("/v1/admin/hosts?limit=200", signal),
        api.get<{ egress_ips: EgressIp[] }>("/v1/admin/egress-ips?status=available&bound=false&limit=200", signal),
      ]);
      const withHost = new Set(hosts.hosts.map((h) => h.user_id));
      return { users: users.users.filter((u) => !withHost.has(u.id)), egress: egress.egress_ips };
    },
    [fixedUser?.id],
  );
  const [userId, setUserId] = useState(fixedUser?.id ?? "");
  const [egressId, setEgressId] = useState("");
  const [memory, setMemory] = useState("4096");
  const [cpu, setCpu] = useState("2");
  const [pids, setPids] = useState("1024");
  const [disk, setDisk] = useState("");
  const [timezone, setTimezone] = useState("UTC");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body: Record<string, unknown> = {
        user_id: userId,
        memory_limit_mb: Number(memory),
        cpu_limit: Number(cpu),
        pids_limit: Number(pids),
        timezone: timezone.trim(),
      };
      if (egressId) body.egress_ip_id = egressId;
      if (disk.trim()) body.disk_limit_mb = Number(disk);
      const res = await api.post<{ host: AdminHost; task_id: string }>("/v1/admin/hosts", body);
      onClose();
      navigate(`/admin/hosts/${res.body.host.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (!options.data) return options.error ? <ErrorMessage error={options.error} /> : <Loading what="Loading users" />;
  const users = options.data.users;
  return (
    <form onSubmit={submit}>
      <ErrorMessage error={error} />
      <Field label="User" error={fieldError(error, "user_id")} hint={users.length === 0 ? "Every active user already has a host." : "Active users without a host."}>
        {(id, d) => (
          <select id={id} aria-describedby={d} required value={userId} onChange={(e) => setUserId(e.target.value)} disabled={!!fixedUser}>
            {!fixedUser ? <option value="">Choose a user…</option> : null}
            {users.map((u) => (
              <option key={u.id} value={u.id}>
                {u.username}
              </option>
            ))}
            {fixedUser && users.length === 0 ? <option value={fixedUser.id}>{fixedUser.username}</option> : null}
          </select>
        )}
      </Field>
      <Field label="Egress IP (optional)" hint="Available, unbound egress IPs. Without one the host follows the server's unbound policy." error={fieldError(error, "egress_ip_id")}>
        {(id, d) => (
          <select id={id} aria-describedby={d} value={egressId} onChange={(e) => setEgressId(e.target.value)}>
            <option value="">none</option>
            {options.data!.egress.map((x) => (
              <option key={x.id} value={x.id}>
                {x.label} ({x.ip_address}, {x.tunnel_type === "proxy" ? String(x.proxy_config?.type ?? "proxy") : "wireguard"})
              </option>
            ))}
          </select>
        )}
      </Field>
      <div className="field-row">
        <Field label="Memory (MiB)" error={fieldError(error, "memory_limit_mb")}>
          {(id, d) => <input id={id} aria-describedby={d} type="number" min={128} max={262144} step={1} required value={memory} onChange={(e) => setMemory(e.target.value)} />}
        </Field>
        <Field label="CPUs" error={fieldError(error, "cpu_limit")}>
          {(id, d) => <input id={id} aria-describedby={d} type="number" min={0.1} max={64} step={0.01} required value={cpu} onChange={(e) => setCpu(e.target.value)} />}
        </Field>
        <Field label="Process limit" error={fieldError(error, "pids_limit")}>
          {(id, d) => <input id={id} aria-describedby={d} type="number" min={64} max={131072} step={1} required value={pids} onChange={(e) => setPids(e.target.value)} />}
        </Field>
      </div>
      <Field label="Home disk (MiB, optional)" hint="Size of the home's own filesystem; empty: the server's default." error={fieldError(error, "disk_limit_mb")}>
        {(id, d) => <input id={id} aria-describedby={d} type="number" min={256} max={1048576} step={1} value={disk} onChange={(e) => setDisk(e.target.value)} />}
      </Field>
      <Field label="Time zone" hint="IANA name, e.g. Europe/Paris" error={fieldError(error, "timezone")}>
        {(id, d) => <input id={id} aria-describedby={d} required value={timezone} onChange={(e) => setTimezone(e.target.value)} />}
      </Field>
      <div className="actions">
        <button type="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={busy || !userId}>
          {busy ? "Creating…" : "Create host"}
        </button>
      </div>
    </form>
  );
}
