import { type FormEvent, useEffect, useState } from "react";
import { ApiError, api, qs } from "../../api";
import { Badge, ConfirmButton, Dialog, ErrorMessage, Field, fieldError, Loading, Notice, Pagination, Time, useResource } from "../../components";
import { useLive, useLiveReload } from "../../live";
import { Link, setQuery, useLocation, usePageTitle } from "../../router";
import { type AdminHost, type CheckResult, type EgressIp, type EgressTestResult, isRecord, type ProxyType, proxyTypeOf, readCheck, readTestResult, type Task } from "../../types";

const PAGE = 25;

type Kind = "wireguard" | ProxyType;
const KINDS: [Kind, string][] = [
  ["wireguard", "WireGuard"],
  ["shadowsocks", "Shadowsocks"],
  ["vmess", "VMess"],
  ["socks", "SOCKS5"],
  ["trojan", "Trojan"],
  ["http", "HTTP proxy"],
];

const kindOf = (e: EgressIp): Kind => (e.tunnel_type === "wireguard" ? "wireguard" : (proxyTypeOf(e) ?? "socks"));
const kindLabel = (k: Kind) => KINDS.find(([v]) => v === k)?.[1] ?? k;

export function EgressPage() {
  usePageTitle("Egress IPs");
  const { query } = useLocation();
  const status = query.get("status") ?? "";
  const tunnelType = query.get("tunnel_type") ?? "";
  const health = query.get("health") ?? "";
  const bound = query.get("bound") ?? "";
  const offset = Number(query.get("offset") ?? 0) || 0;
  const list = useResource(
    (signal) =>
      api.get<{ egress_ips: EgressIp[]; total: number; limit: number; offset: number }>(
        `/v1/admin/egress-ips${qs({ status, tunnel_type: tunnelType, health, bound, limit: PAGE, offset })}`,
        signal,
      ),
    [status, tunnelType, health, bound, offset],
  );
  // Tests and live re-applies finish as tasks: refresh health and last test then.
  useLiveReload(list.reload, (m) => m.type === "task" && (m.data.kind === "egress.test" || m.data.kind === "host.apply-egress") && m.data.status !== "running" && m.data.status !== "pending");
  const [editing, setEditing] = useState<EgressIp | "new" | null>(null);
  const [testing, setTesting] = useState<EgressIp | null>(null);
  const [binding, setBinding] = useState<EgressIp | null>(null);
  const [note, setNote] = useState<string | undefined>(undefined);

  return (
    <section>
      <div className="page-head">
        <h1>Egress IPs</h1>
        <button type="button" className="primary" onClick={() => setEditing("new")}>
          Create egress IP
        </button>
      </div>
      <form className="filters" aria-label="Filter egress IPs" onSubmit={(e) => e.preventDefault()}>
        <Field label="Status">
          {(id) => (
            <select id={id} value={status} onChange={(e) => setQuery({ status: e.target.value, offset: undefined })}>
              <option value="">any</option>
              <option value="available">available</option>
              <option value="disabled">disabled</option>
            </select>
          )}
        </Field>
        <Field label="Tunnel">
          {(id) => (
            <select id={id} value={tunnelType} onChange={(e) => setQuery({ tunnel_type: e.target.value, offset: undefined })}>
              <option value="">any</option>
              <option value="wireguard">WireGuard</option>
              <option value="proxy">proxy</option>
            </select>
          )}
        </Field>
        <Field label="Health">
          {(id) => (
            <select id={id} value={health} onChange={(e) => setQuery({ health: e.target.value, offset: undefined })}>
              <option value="">any</option>
              <option value="unknown">unknown</option>
              <option value="passing">passing</option>
              <option value="failing">failing</option>
            </select>
          )}
        </Field>
        <Field label="Bound">
          {(id) => (
            <select id={id} value={bound} onChange={(e) => setQuery({ bound: e.target.value, offset: undefined })}>
              <option value="">any</option>
              <option value="true">bound</option>
              <option value="false">free</option>
            </select>
          )}
        </Field>
      </form>
      {note ? <Notice kind="success">{note}</Notice> : null}
      <ErrorMessage error={list.error} />
      {!list.data ? (
        <Loading />
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Egress IPs</caption>
              <thead>
                <tr>
                  <th scope="col">Label</th>
                  <th scope="col">Exit IP</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Status</th>
                  <th scope="col">Health</th>
                  <th scope="col">Bound to</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.data.egress_ips.length === 0 ? (
                  <tr>
                    <td colSpan={7} className="muted">
                      No egress IPs match.
                    </td>
                  </tr>
                ) : (
                  list.data.egress_ips.map((e) => (
                    <tr key={e.id}>
                      <th scope="row">{e.label}</th>
                      <td className="mono">{e.ip_address}</td>
                      <td>{kindLabel(kindOf(e))}</td>
                      <td>
                        <Badge value={e.status} />
                      </td>
                      <td>
                        <Badge value={e.health} />
                        {e.last_test ? (
                          <div className="small-text muted">
                            tested <Time value={e.last_test.tested_at} />
                          </div>
                        ) : null}
                      </td>
                      <td>{e.bound_host_id ? <Link to={`/admin/hosts/${e.bound_host_id}`}>host</Link> : <span className="muted">free</span>}</td>
                      <td>
                        <div className="button-row compact">
                          <button type="button" className="small" onClick={() => setEditing(e)} aria-label={`Edit ${e.label}`}>
                            Edit
                          </button>
                          <button type="button" className="small" onClick={() => setTesting(e)} aria-label={`Test ${e.label}`}>
                            Test
                          </button>
                          {e.binding_id ? (
                            <ConfirmButton
                              label="Unbind"
                              className="small"
                              title={`Unbind ${e.label}`}
                              danger
                              message={<p>Remove the binding of {e.label}? A running host loses internet access at once (fail closed).</p>}
                              action={async () => {
                                await api.del(`/v1/admin/bindings/${e.binding_id}`);
                                setNote(`${e.label} unbound.`);
                                list.reload();
                              }}
                            />
                          ) : (
                            <button type="button" className="small" onClick={() => setBinding(e)} aria-label={`Bind ${e.label} to a host`} disabled={e.status === "disabled"}>
                              Bind
                            </button>
                          )}
                          <ConfirmButton
                            label="Delete"
                            className="small danger"
                            title={`Delete ${e.label}`}
                            danger
                            message={<p>Delete the egress IP {e.label}? {e.binding_id ? "It is bound: unbind it first." : ""}</p>}
                            action={async () => {
                              await api.del(`/v1/admin/egress-ips/${e.id}`);
                              setNote(`${e.label} deleted.`);
                              list.reload();
                            }}
                          />
                        </div>
                      </td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
          <Pagination label="Egress IPs" total={list.data.total} limit={list.data.limit} offset={list.data.offset} onPage={(o) => setQuery({ offset: o || undefined })} />
        </>
      )}
      <Dialog open={editing !== null} title={editing === "new" ? "Create egress IP" : `Edit ${editing?.label ?? ""}`} onClose={() => setEditing(null)} wide>
        {editing ? (
          <EgressForm
            existing={editing === "new" ? null : editing}
            onCancel={() => setEditing(null)}
            onSaved={(msg) => {
              setEditing(null);
              setNote(msg);
              list.reload();
            }}
          />
        ) : null}
      </Dialog>
      <Dialog open={testing !== null} title={`Test ${testing?.label ?? ""}`} onClose={() => setTesting(null)} wide>
        {testing ? <EgressTest egress={testing} onClose={() => setTesting(null)} /> : null}
      </Dialog>
      <Dialog open={binding !== null} title={`Bind ${binding?.label ?? ""}`} onClose={() => setBinding(null)}>
        {binding ? (
          <BindToHost
            egress={binding}
            onCancel={() => setBinding(null)}
            onBound={(msg) => {
              setBinding(null);
              setNote(msg);
              list.reload();
            }}
          />
        ) : null}
      </Dialog>
    </section>
  );
}

// ---------------------------------------------------------------------------------------------
// Create / edit

interface FormState {
  kind: Kind;
  label: string;
  ip_address: string;
  provider: string;
  status: EgressIp["status"];
  // WireGuard
  wg_endpoint: string;
  wg_public_key: string;
  wg_preshared_key: string;
  wg_allowed_ips: string;
  wg_dns_server: string;
  wg_peer_address: string;
  wg_private_key: string;
  regenerate_wg_client_key: boolean;
  // proxies
  server: string;
  server_port: string;
  method: string;
  password: string;
  uuid: string;
  security: string;
  alter_id: string;
  username: string;
  tls_enabled: boolean;
  tls_server_name: string;
  tcp_only: boolean;
  proxy_dns_server: string;
}

function initialState(e: EgressIp | null): FormState {
  const wg = e?.tunnel_type === "wireguard" ? e : undefined;
  const pc = (e?.tunnel_type === "proxy" ? e.proxy_config : null) ?? {};
  const tls = isRecord(pc.tls) ? pc.tls : {};
  const str = (v: unknown) => (typeof v === "string" || typeof v === "number" ? String(v) : "");
  const kind = e ? kindOf(e) : "wireguard";
  return {
    kind,
    label: e?.label ?? "",
    ip_address: e?.ip_address ?? "",
    provider: e?.provider ?? "manual",
    status: e?.status ?? "available",
    wg_endpoint: wg?.wg_endpoint ?? "",
    wg_public_key: wg?.wg_public_key ?? "",
    wg_preshared_key: "",
    wg_allowed_ips: wg?.wg_allowed_ips ?? "0.0.0.0/0",
    wg_dns_server: wg?.wg_dns_server ?? "",
    wg_peer_address: wg?.wg_peer_address ?? "",
    wg_private_key: "",
    regenerate_wg_client_key: false,
    server: str(pc.server),
    server_port: str(pc.server_port),
    method: str(pc.method) || "aes-256-gcm",
    password: "",
    uuid: "",
    security: str(pc.security) || "auto",
    alter_id: str(pc.alter_id) || "0",
    username: str(pc.username),
    tls_enabled: kind === "trojan" ? true : tls.enabled === true,
    tls_server_name: str(tls.server_name),
    tcp_only: pc.network === "tcp",
    proxy_dns_server: (e?.tunnel_type === "proxy" ? e.proxy_dns_server : null) ?? "",
  };
}

/** The request body for create (everything) or update (changed fields; secrets only when typed). */
function buildBody(f: FormState, existing: EgressIp | null): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const set = (k: string, v: unknown, old?: unknown) => {
    if (!existing || v !== old) body[k] = v;
  };
  set("label", f.label.trim(), existing?.label);
  set("ip_address", f.ip_address.trim(), existing?.ip_address);
  set("provider", f.provider.trim(), existing?.provider);
  set("status", f.status, existing?.status);
  if (!existing) body.tunnel_type = f.kind === "wireguard" ? "wireguard" : "proxy";
  if (f.kind === "wireguard") {
    const wg = existing?.tunnel_type === "wireguard" ? existing : undefined;
    set("wg_endpoint", f.wg_endpoint.trim(), wg?.wg_endpoint);
    set("wg_public_key", f.wg_public_key.trim(), wg?.wg_public_key);
    set("wg_allowed_ips", f.wg_allowed_ips.trim(), wg?.wg_allowed_ips);
    set("wg_dns_server", f.wg_dns_server.trim(), wg?.wg_dns_server);
    set("wg_peer_address", f.wg_peer_address.trim(), wg?.wg_peer_address);
    // Secrets: only what was typed; empty keeps the stored value (docs/api.md#secrets).
    if (f.wg_preshared_key.trim()) body.wg_preshared_key = f.wg_preshared_key.trim();
    if (f.wg_private_key.trim()) body.wg_private_key = f.wg_private_key.trim();
    if (existing && f.regenerate_wg_client_key) body.regenerate_wg_client_key = true;
    return body;
  }
  const pc: Record<string, unknown> = { type: f.kind, server: f.server.trim(), server_port: Number(f.server_port) };
  if (f.kind === "shadowsocks") pc.method = f.method;
  if (f.kind === "shadowsocks" || f.kind === "trojan" || ((f.kind === "socks" || f.kind === "http") && f.username.trim())) {
    // Absent on update keeps the stored password of the same type.
    if (f.password) pc.password = f.password;
  }
  if (f.kind === "socks" || f.kind === "http") {
    if (f.username.trim()) pc.username = f.username.trim();
  }
  if (f.kind === "vmess") {
    if (f.uuid.trim()) pc.uuid = f.uuid.trim();
    pc.security = f.security;
    pc.alter_id = Number(f.alter_id || 0);
  }
  if (f.kind === "trojan" || (f.kind === "http" && f.tls_enabled)) {
    const tls: Record<string, unknown> = { enabled: true };
    if (f.tls_server_name.trim()) tls.server_name = f.tls_server_name.trim();
    pc.tls = tls;
  }
  if (f.tcp_only && f.kind !== "http") pc.network = "tcp";
  body.proxy_config = pc;
  const dns = f.proxy_dns_server.trim() || null;
  if (!existing || dns !== (existing.tunnel_type === "proxy" ? existing.proxy_dns_server : null)) body.proxy_dns_server = dns;
  return body;
}

function EgressForm({ existing, onCancel, onSaved }: { existing: EgressIp | null; onCancel: () => void; onSaved: (msg: string) => void }) {
  const [f, setF] = useState<FormState>(() => initialState(existing));
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const upd = <K extends keyof FormState>(k: K, v: FormState[K]) => setF((p) => ({ ...p, [k]: v }));
  const err = (field: string) => fieldError(error, field);
  const pcErr = (field: string) => fieldError(error, `proxy_config.${field}`);
  const secretHint = existing ? "Leave empty to keep the stored value." : undefined;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body = buildBody(f, existing);
      if (existing) {
        const r = await api.put<{ egress_ip: EgressIp; task_id?: string }>(`/v1/admin/egress-ips/${existing.id}`, body);
        onSaved(`${r.body.egress_ip.label} saved${r.body.task_id ? "; the bound host is being updated live" : ""}.`);
      } else {
        const r = await api.post<{ egress_ip: EgressIp }>("/v1/admin/egress-ips", body);
        onSaved(`${r.body.egress_ip.label} created.`);
      }
    } catch (ex) {
      setError(ex);
    } finally {
      setBusy(false);
    }
  };

  const text = (label: string, key: keyof FormState, opts: { error?: string; hint?: string; required?: boolean; type?: string; placeholder?: string; mono?: boolean } = {}) => (
    <Field label={label} hint={opts.hint} error={opts.error}>
      {(id, d) => (
        <input
          id={id}
          aria-describedby={d}
          type={opts.type ?? "text"}
          required={opts.required}
          placeholder={opts.placeholder}
          className={opts.mono ? "mono" : undefined}
          autoComplete="off"
          spellCheck={false}
          value={String(f[key])}
          onChange={(e) => upd(key, e.target.value as never)}
        />
      )}
    </Field>
  );

  const pickKind = (value: string) => {
    const k = KINDS.find(([v]) => v === value)?.[0];
    if (k) upd("kind", k);
  };
  const kinds = existing ? KINDS.filter(([k]) => (existing.tunnel_type === "wireguard" ? k === "wireguard" : k !== "wireguard")) : KINDS;
  const hasUserPass = f.kind === "socks" || f.kind === "http";

  return (
    <form onSubmit={submit}>
      <ErrorMessage error={error} />
      <Field label="Kind" hint={existing ? "The tunnel type of an existing egress cannot change." : "WireGuard tunnel, or a sing-box proxy outbound."}>
        {(id, d) => (
          <select id={id} aria-describedby={d} value={f.kind} onChange={(e) => pickKind(e.target.value)}>
            {kinds.map(([k, l]) => (
              <option key={k} value={k}>
                {l}
              </option>
            ))}
          </select>
        )}
      </Field>
      <div className="field-row">
        {text("Label", "label", { required: true, error: err("label") })}
        {text("Declared exit IP", "ip_address", { required: true, error: err("ip_address"), mono: true, placeholder: "203.0.113.10" })}
      </div>
      <div className="field-row">
        {text("Provider", "provider", { error: err("provider") })}
        <Field label="Status" error={err("status")}>
          {(id) => (
            <select id={id} value={f.status} onChange={(e) => upd("status", e.target.value as FormState["status"])}>
              <option value="available">available</option>
              <option value="disabled">disabled (cuts a bound host's internet)</option>
            </select>
          )}
        </Field>
      </div>

      {f.kind === "wireguard" ? (
        <fieldset>
          <legend>WireGuard peer</legend>
          {text("Endpoint", "wg_endpoint", { required: true, error: err("wg_endpoint"), mono: true, placeholder: "vpn.example.com:51820" })}
          {text("Peer public key", "wg_public_key", { required: true, error: err("wg_public_key"), mono: true })}
          {text("Preshared key (optional)", "wg_preshared_key", { error: err("wg_preshared_key"), mono: true, type: "password", hint: secretHint })}
          <div className="field-row">
            {text("Allowed IPs", "wg_allowed_ips", { error: err("wg_allowed_ips"), mono: true })}
            {text("DNS server", "wg_dns_server", { required: true, error: err("wg_dns_server"), mono: true, placeholder: "1.1.1.1" })}
            {text("Tunnel address", "wg_peer_address", { required: true, error: err("wg_peer_address"), mono: true, placeholder: "10.0.0.2/32" })}
          </div>
          {text("Our private key (optional)", "wg_private_key", {
            error: err("wg_private_key"),
            mono: true,
            type: "password",
            hint: existing ? "Leave empty to keep it." : "Leave empty to generate a key pair; register our public key with the provider.",
          })}
          {existing ? (
            <>
              {existing.tunnel_type === "wireguard" && existing.wg_client_public_key ? (
                <p className="small-text">
                  Our public key: <span className="mono break">{existing.wg_client_public_key}</span>
                </p>
              ) : null}
              <label className="checkbox">
                <input type="checkbox" checked={f.regenerate_wg_client_key} onChange={(e) => upd("regenerate_wg_client_key", e.target.checked)} /> Generate a new
                key pair for our side
              </label>
            </>
          ) : null}
        </fieldset>
      ) : (
        <fieldset>
          <legend>{kindLabel(f.kind)} server</legend>
          <div className="field-row">
            {text("Server", "server", { required: true, error: pcErr("server"), mono: true })}
            {text("Port", "server_port", { required: true, error: pcErr("server_port"), type: "number" })}
          </div>
          {f.kind === "shadowsocks" ? (
            <Field label="Method" error={pcErr("method")}>
              {(id) => (
                <select id={id} value={f.method} onChange={(e) => upd("method", e.target.value)}>
                  <option value="aes-128-gcm">aes-128-gcm</option>
                  <option value="aes-256-gcm">aes-256-gcm</option>
                  <option value="chacha20-ietf-poly1305">chacha20-ietf-poly1305</option>
                </select>
              )}
            </Field>
          ) : null}
          {f.kind === "vmess" ? (
            <>
              {text("UUID", "uuid", { required: !existing, error: pcErr("uuid"), mono: true, type: "password", hint: secretHint })}
              <div className="field-row">
                <Field label="Security" error={pcErr("security")}>
                  {(id) => (
                    <select id={id} value={f.security} onChange={(e) => upd("security", e.target.value)}>
                      <option value="auto">auto</option>
                      <option value="aes-128-gcm">aes-128-gcm</option>
                      <option value="chacha20-poly1305">chacha20-poly1305</option>
                      <option value="none">none</option>
                    </select>
                  )}
                </Field>
                {text("Alter id", "alter_id", { error: pcErr("alter_id"), type: "number" })}
              </div>
            </>
          ) : null}
          {hasUserPass ? text("Username (optional)", "username", { error: pcErr("username") }) : null}
          {f.kind === "shadowsocks" || f.kind === "trojan" || hasUserPass
            ? text(hasUserPass ? "Password (optional, with a username)" : "Password", "password", {
                required: !existing && !hasUserPass,
                error: pcErr("password"),
                type: "password",
                hint: secretHint,
              })
            : null}
          {f.kind === "http" ? (
            <label className="checkbox">
              <input type="checkbox" checked={f.tls_enabled} onChange={(e) => upd("tls_enabled", e.target.checked)} /> HTTPS (TLS to the proxy)
            </label>
          ) : null}
          {f.kind === "trojan" || (f.kind === "http" && f.tls_enabled)
            ? text("TLS server name (optional)", "tls_server_name", { error: pcErr("tls.server_name"), mono: true, hint: "Defaults to the server when it is a name." })
            : null}
          {f.kind !== "http" ? (
            <label className="checkbox">
              <input type="checkbox" checked={f.tcp_only} onChange={(e) => upd("tcp_only", e.target.checked)} /> TCP only (the server does not relay UDP; DNS
              goes over TCP)
            </label>
          ) : null}
          {text("DNS server through the proxy (optional)", "proxy_dns_server", { error: err("proxy_dns_server"), mono: true, hint: "Empty: the server default." })}
        </fieldset>
      )}
      <div className="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Saving…" : existing ? "Save" : "Create"}
        </button>
      </div>
    </form>
  );
}

// ---------------------------------------------------------------------------------------------
// Test

const CHECKS: [string, string][] = [
  ["connectivity", "Connectivity"],
  ["exit_ip", "Exit IP match"],
  ["dns_leak", "DNS leak"],
];

function CheckRow({ name, check }: { name: string; check: CheckResult | undefined }) {
  if (!check) return null;
  const facts: string[] = [];
  if (check.latency_ms != null) facts.push(`latency ${check.latency_ms} ms`);
  if (check.expected) facts.push(`expected ${check.expected}`);
  if (check.observed !== undefined) facts.push(`observed ${check.observed ?? "nothing"}`);
  if (check.resolvers_seen) facts.push(`resolvers seen: ${check.resolvers_seen.join(", ") || "none"}`);
  return (
    <li className={`check check-${check.status}`}>
      <strong>{name}</strong> <Badge value={check.status} />
      {facts.length ? <div className="small-text mono">{facts.join(" · ")}</div> : null}
      {check.error ? <div className="small-text">{check.error}</div> : null}
    </li>
  );
}

export function TestResultView({ result }: { result: EgressTestResult }) {
  return (
    <section aria-label="Test result" className="test-result" data-result={result.status}>
      <p>
        <Badge value={result.status} label="Result" /> {result.error_code ? <span className="mono">{result.error_code}</span> : null} · tested{" "}
        <Time value={result.tested_at} /> in {result.duration_ms} ms
      </p>
      <ul className="checks">
        {CHECKS.map(([key, label]) => (
          <CheckRow key={key} name={label} check={readCheck(result.results[key])} />
        ))}
      </ul>
    </section>
  );
}

/**
 * POST …/test waits up to ~35 s and answers the result (200), or 202 with a task id to follow.
 * A server without the endpoint answers the JSON 404 `not_found`.
 */
function EgressTest({ egress, onClose }: { egress: EgressIp; onClose: () => void }) {
  const [state, setState] = useState<
    | { phase: "idle" }
    | { phase: "running"; taskId?: string; progress?: string }
    | { phase: "done"; result: EgressTestResult }
    | { phase: "unavailable" }
    | { phase: "error"; error: unknown }
  >({ phase: "idle" });

  const taskId = state.phase === "running" ? state.taskId : undefined;
  // Follow a 202's task: live events, plus a poll in case the stream is down.
  useLive((m) => {
    if (m.type !== "task" || !taskId || m.data.id !== taskId) return;
    if (m.data.status === "running" || m.data.status === "pending") setState({ phase: "running", taskId, progress: m.data.progress_message ?? undefined });
  });
  useEffect(() => {
    if (!taskId) return;
    let stop = false;
    const poll = async () => {
      while (!stop) {
        try {
          const r = await api.get<{ task: Task }>(`/v1/admin/tasks/${taskId}`);
          const t = r.task;
          if (t.status === "succeeded" || t.status === "failed" || t.status === "canceled") {
            const result = readTestResult(t.result);
            if (result) setState({ phase: "done", result });
            else setState({ phase: "error", error: new Error(t.error_message ?? `The test task ended ${t.status}.`) });
            return;
          }
          setState((s) => (s.phase === "running" ? { ...s, progress: t.progress_message ?? s.progress } : s));
        } catch (err) {
          setState({ phase: "error", error: err });
          return;
        }
        await new Promise((r) => setTimeout(r, 2000));
      }
    };
    void poll();
    return () => {
      stop = true;
    };
  }, [taskId]);

  const run = async () => {
    setState({ phase: "running" });
    try {
      // 202 answers `{ task_id }`, 200 the verdict (which carries its task_id too).
      const r = await api.post<EgressTestResult | { task_id: string }>(`/v1/admin/egress-ips/${egress.id}/test`);
      if (r.status === 202) {
        setState({ phase: "running", taskId: r.body.task_id });
      } else {
        const result = readTestResult(r.body);
        setState(result ? { phase: "done", result } : { phase: "error", error: new Error("The test answered without a verdict.") });
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && err.code === "not_found") setState({ phase: "unavailable" });
      else setState({ phase: "error", error: err });
    }
  };

  return (
    <div>
      <p>
        Brings the tunnel up in a throw-away gateway and runs three checks: connectivity, exit IP match with{" "}
        <span className="mono">{egress.ip_address}</span>, and DNS leaks. It takes up to about 30 seconds.
      </p>
      {state.phase === "idle" && egress.last_test ? (
        <>
          <h3>Last result</h3>
          <TestResultView result={egress.last_test} />
        </>
      ) : null}
      {state.phase === "running" ? (
        <p role="status" aria-live="polite">
          Testing…{state.taskId ? ` (task ${state.taskId.slice(0, 8)}${state.progress ? `: ${state.progress}` : ""})` : ""}
        </p>
      ) : null}
      {state.phase === "done" ? <TestResultView result={state.result} /> : null}
      {state.phase === "unavailable" ? <Notice kind="warn">Egress testing is not available on this server yet.</Notice> : null}
      {state.phase === "error" ? <ErrorMessage error={state.error} /> : null}
      <div className="actions">
        <button type="button" onClick={onClose}>
          Close
        </button>
        <button type="button" className="primary" onClick={() => void run()} disabled={state.phase === "running"}>
          {state.phase === "done" || state.phase === "error" ? "Test again" : "Run test"}
        </button>
      </div>
    </div>
  );
}

// ---------------------------------------------------------------------------------------------
// Bind

function BindToHost({ egress, onCancel, onBound }: { egress: EgressIp; onCancel: () => void; onBound: (msg: string) => void }) {
  const hosts = useResource((signal) => api.get<{ hosts: AdminHost[] }>("/v1/admin/hosts?limit=200", signal), []);
  const [hostId, setHostId] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  if (!hosts.data) return hosts.error ? <ErrorMessage error={hosts.error} /> : <Loading />;
  const free = hosts.data.hosts.filter((h) => !h.binding_id && h.status !== "deleting");
  return (
    <form
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(undefined);
        try {
          const r = await api.post<{ binding: { id: string }; task_id?: string }>("/v1/admin/bindings", { host_id: hostId, egress_ip_id: egress.id });
          onBound(`${egress.label} bound${r.body.task_id ? "; applying it to the running host" : ""}.`);
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <ErrorMessage error={error} />
      {free.length === 0 ? (
        <p className="muted">Every host already has an egress IP.</p>
      ) : (
        <div className="field">
          <label htmlFor="bind-host">Host</label>
          <select id="bind-host" required value={hostId} onChange={(e) => setHostId(e.target.value)}>
            <option value="">Choose a host…</option>
            {free.map((h) => (
              <option key={h.id} value={h.id}>
                {h.short_id} ({h.username}, {h.status})
              </option>
            ))}
          </select>
        </div>
      )}
      <p className="hint">A running host switches to this egress live, without a restart.</p>
      <div className="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={busy || !hostId}>
          Bind
        </button>
      </div>
    </form>
  );
}
