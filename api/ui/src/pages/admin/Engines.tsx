import { type FormEvent, useState } from "react";
import type { EngineView } from "../../../../../shared/services/engines/view.js";
import { api, qs } from "../../api";
import { Badge, ConfirmButton, Dialog, ErrorMessage, Field, fieldError, Loading, Time, useResource } from "../../components";
import { setQuery, useLocation, usePageTitle } from "../../router";

/** The Docker engines behind this control plane (docs/api.md#engines). */
type Engine = EngineView;

export function EnginesPage() {
  usePageTitle("Engines");
  const { query } = useLocation();
  const state = query.get("state") ?? "";
  const list = useResource((signal) => api.get<{ engines: Engine[] }>(`/v1/admin/engines${qs({ state })}`, signal), [state]);
  const [adding, setAdding] = useState(false);

  return (
    <section>
      <div className="page-head">
        <h1>Engines</h1>
        <button type="button" onClick={list.reload} disabled={list.loading}>
          Refresh
        </button>
        <button type="button" className="primary" onClick={() => setAdding(true)}>
          Add engine
        </button>
      </div>
      <p className="muted">
        Each engine is a Docker daemon with its own workers. New hosts are placed only on <strong>active</strong> engines; cordoned and
        draining engines keep their hosts but get no new ones. Moving hosts off a draining engine is done by a separate task.
      </p>
      <form className="filters" aria-label="Filter engines" onSubmit={(e) => e.preventDefault()}>
        <Field label="State">
          {(id) => (
            <select id={id} value={state} onChange={(e) => setQuery({ state: e.target.value })}>
              <option value="">any</option>
              <option value="active">active</option>
              <option value="cordoned">cordoned</option>
              <option value="draining">draining</option>
            </select>
          )}
        </Field>
      </form>
      <ErrorMessage error={list.error} />
      {!list.data ? (
        <Loading />
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Engines</caption>
            <thead>
              <tr>
                <th scope="col">Engine</th>
                <th scope="col">State</th>
                <th scope="col">Health</th>
                <th scope="col">Hosts</th>
                <th scope="col">Memory</th>
                <th scope="col">CPUs</th>
                <th scope="col">Labels</th>
                <th scope="col">Last seen</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {list.data.engines.length === 0 ? (
                <tr>
                  <td colSpan={9} className="muted">
                    No engines match.
                  </td>
                </tr>
              ) : (
                list.data.engines.map((e) => <EngineRow key={e.id} engine={e} onChanged={list.reload} />)
              )}
            </tbody>
          </table>
        </div>
      )}
      <AddEngineDialog open={adding} onClose={() => setAdding(false)} onAdded={list.reload} />
    </section>
  );
}

/** used / declared as a meter; an undeclared axis shows the use alone. */
function Capacity({ used, declared, unit, label }: { used: number; declared: number | null; unit: string; label: string }) {
  if (declared === null) {
    return (
      <span>
        {used}
        {unit} <span className="muted">(unlimited)</span>
      </span>
    );
  }
  return (
    <span>
      <meter min={0} max={Math.max(declared, 0.0001)} value={Math.min(used, declared)} high={declared * 0.85} optimum={0} aria-label={`${label} used`} />{" "}
      {used}/{declared}
      {unit}
    </span>
  );
}

function EngineRow({ engine: e, onChanged }: { engine: Engine; onChanged: () => void }) {
  const act = (verb: "cordon" | "uncordon" | "drain") => async () => {
    await api.post(`/v1/admin/engines/${encodeURIComponent(e.id)}/${verb}`);
    onChanged();
  };
  const inUse = e.counts.hosts > 0 || e.counts.pool_members > 0;
  return (
    <tr>
      <th scope="row">
        {e.id}
        <div className="muted small">
          <code>{e.endpoint}</code>
          {e.tls ? <div title={`CA sha256 ${e.tls.ca_sha256}\nclient certificate sha256 ${e.tls.cert_sha256}`}>mutual TLS</div> : null}
        </div>
      </th>
      <td>
        <Badge value={e.state} label="State" />
      </td>
      <td>
        <Badge value={e.health} label="Health" />
      </td>
      <td>
        <Capacity used={e.counts.hosts} declared={e.capacity.max_hosts} unit="" label="Hosts" />
        <div className="muted small">
          {e.counts.running_hosts} running · {e.counts.pool_members} in pool
        </div>
      </td>
      <td>
        <Capacity used={e.usage.memory_mb} declared={e.capacity.memory_mb} unit=" MiB" label="Memory" />
      </td>
      <td>
        <Capacity used={e.usage.cpus} declared={e.capacity.cpus} unit="" label="CPUs" />
      </td>
      <td>
        {Object.keys(e.labels).length === 0 ? (
          <span className="muted">none</span>
        ) : (
          Object.entries(e.labels).map(([k, v]) => (
            <code key={k} className="label-chip">
              {k}={v}{" "}
            </code>
          ))
        )}
      </td>
      <td>{e.last_seen_at ? <Time value={e.last_seen_at} /> : <span className="muted">never</span>}</td>
      <td className="actions-cell">
        {e.state === "active" ? (
          <>
            <ConfirmButton
              className="small"
              label="Cordon"
              title={`Cordon ${e.id}?`}
              message={<p>No new hosts will be placed on {e.id}. Its hosts keep running.</p>}
              action={act("cordon")}
            />
            <ConfirmButton
              className="small"
              label="Drain"
              title={`Drain ${e.id}?`}
              message={<p>No new hosts will be placed on {e.id}; its hosts are to be moved to other engines by a separate task.</p>}
              action={act("drain")}
            />
          </>
        ) : (
          <ConfirmButton
            className="small"
            label="Uncordon"
            title={`Make ${e.id} schedulable again?`}
            message={<p>New hosts may be placed on {e.id} again.</p>}
            action={act("uncordon")}
          />
        )}
        <ConfirmButton
          className="small danger"
          danger
          label="Remove"
          disabled={e.id === "default" || inUse}
          title={`Remove ${e.id}?`}
          message={<p>The engine {e.id} is forgotten. Its workers stop being able to start. This cannot be undone.</p>}
          action={async () => {
            await api.del(`/v1/admin/engines/${encodeURIComponent(e.id)}`);
            onChanged();
          }}
        />
      </td>
    </tr>
  );
}

/** `key=value` per line (or comma separated) → labels; a malformed entry is left to the API to refuse. */
function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(/[\n,]/)) {
    const s = part.trim();
    if (!s) continue;
    const eq = s.indexOf("=");
    if (eq < 0) out[s] = "";
    else out[s.slice(0, eq).trim()] = s.slice(eq + 1).trim();
  }
  return out;
}

const numberOrUndefined = (s: string) => (s.trim() === "" ? undefined : Number(s));

function AddEngineDialog({ open, onClose, onAdded }: { open: boolean; onClose: () => void; onAdded: () => void }) {
  const [id, setId] = useState("");
  const [endpoint, setEndpoint] = useState("tcp://");
  const [ca, setCa] = useState("");
  const [cert, setCert] = useState("");
  const [key, setKey] = useState("");
  const [memory, setMemory] = useState("");
  const [cpus, setCpus] = useState("");
  const [maxHosts, setMaxHosts] = useState("");
  const [labels, setLabels] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const tcp = endpoint.startsWith("tcp://");

  const close = () => {
    for (const set of [setId, setCa, setCert, setKey, setMemory, setCpus, setMaxHosts, setLabels]) set("");
    setEndpoint("tcp://");
    setError(undefined);
    onClose();
  };

  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api.post("/v1/admin/engines", {
        id,
        endpoint,
        ...(tcp ? { tls: { ca_pem: ca, cert_pem: cert, key_pem: key } } : {}),
        memory_mb: numberOrUndefined(memory),
        cpus: numberOrUndefined(cpus),
        max_hosts: numberOrUndefined(maxHosts),
        labels: parseLabels(labels),
      });
      // The key leaves this form's memory as soon as it is stored.
      setKey("");
      onAdded();
      close();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog open={open} title="Add engine" onClose={() => !busy && close()} wide>
      <form onSubmit={submit} noValidate>
        <Field label="Name" hint="Lowercase letters, digits, _ and -; the worker's ENGINE_ID." error={fieldError(error, "id")}>
          {(fid, d) => <input id={fid} aria-describedby={d} value={id} onChange={(e) => setId(e.target.value)} required autoComplete="off" />}
        </Field>
        <Field label="Endpoint" hint="unix:///var/run/docker.sock, or tcp://host:port with mutual TLS." error={fieldError(error, "endpoint")}>
          {(fid, d) => <input id={fid} aria-describedby={d} value={endpoint} onChange={(e) => setEndpoint(e.target.value)} required autoComplete="off" />}
        </Field>
        {tcp ? (
          <>
            <Field label="CA certificate (PEM)" hint="The CA that signed the engine's server certificate." error={fieldError(error, "tls.ca_pem") ?? fieldError(error, "tls")}>
              {(fid, d) => <textarea id={fid} aria-describedby={d} rows={4} value={ca} onChange={(e) => setCa(e.target.value)} spellCheck={false} />}
            </Field>
            <Field label="Client certificate (PEM)" error={fieldError(error, "tls.cert_pem")}>
              {(fid, d) => <textarea id={fid} aria-describedby={d} rows={4} value={cert} onChange={(e) => setCert(e.target.value)} spellCheck={false} />}
            </Field>
            <Field label="Client key (PEM)" hint="Stored encrypted; never shown again." error={fieldError(error, "tls.key_pem")}>
              {(fid, d) => (
                <textarea id={fid} aria-describedby={d} rows={4} value={key} onChange={(e) => setKey(e.target.value)} spellCheck={false} autoComplete="off" />
              )}
            </Field>
          </>
        ) : null}
        <Field label="Memory (MiB)" hint="Empty: not limited." error={fieldError(error, "memory_mb")}>
          {(fid, d) => <input id={fid} aria-describedby={d} type="number" min={1} value={memory} onChange={(e) => setMemory(e.target.value)} />}
        </Field>
        <Field label="CPUs" hint="Empty: not limited." error={fieldError(error, "cpus")}>
          {(fid, d) => <input id={fid} aria-describedby={d} type="number" min={0.01} step={0.01} value={cpus} onChange={(e) => setCpus(e.target.value)} />}
        </Field>
        <Field label="Max hosts" hint="Empty: not limited; 0 takes no hosts." error={fieldError(error, "max_hosts")}>
          {(fid, d) => <input id={fid} aria-describedby={d} type="number" min={0} value={maxHosts} onChange={(e) => setMaxHosts(e.target.value)} />}
        </Field>
        <Field label="Labels" hint="key=value, one per line; a create's placement selector matches them." error={fieldError(error, "labels")}>
          {(fid, d) => <textarea id={fid} aria-describedby={d} rows={3} value={labels} onChange={(e) => setLabels(e.target.value)} spellCheck={false} />}
        </Field>
        <ErrorMessage error={error} />
        <div className="actions">
          <button type="button" onClick={close} disabled={busy}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? "Adding…" : "Add engine"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
