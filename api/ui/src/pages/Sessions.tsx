import "asciinema-player/dist/bundle/asciinema-player.css";
import { type FormEvent, useEffect, useRef, useState } from "react";
import { api, ApiError, getSession, qs } from "../api";
import { ErrorMessage, Field, fieldError, isoToLocalInput, Loading, localInputToIso, Notice, Pagination, Time, useResource } from "../components";
import { Link, setQuery, useLocation, usePageTitle } from "../router";
import type { SessionRow } from "../types";

/**
 * SSH and desktop sessions (docs/sessions.md): the admin's list of all of them (GET
 * /v1/admin/sessions) and the portal's own (GET /v1/user/sessions), with the detail page that
 * replays a recording in the bundled asciinema-player.
 */
type Portal = "admin" | "user";

const PAGE = 50;
const base = (portal: Portal) => (portal === "admin" ? "/admin/sessions" : "/portal/sessions");
const apiBase = (portal: Portal) => (portal === "admin" ? "/v1/admin/sessions" : "/v1/user/sessions");

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${m % 60} min`;
}

const reasonText = (s: SessionRow) => (s.open ? "open" : (s.end_reason ?? "ended").replace(/_/g, " "));

/** The recording as text: a fetch with the Authorization header (the token never goes in a URL). */
async function fetchRecording(portal: Portal, id: string, signal?: AbortSignal): Promise<string> {
  const s = getSession();
  const res = await fetch(`${apiBase(portal)}/${encodeURIComponent(id)}/recording`, {
    headers: s ? { authorization: `Bearer ${s.token}` } : {},
    cache: "no-store",
    signal,
  });
  if (!res.ok) {
    const e = (await res.json().catch(() => ({}))) as { error?: string; code?: string };
    throw new ApiError(res.status, e.code ?? "http_error", e.error ?? `The server answered ${res.status}.`);
  }
  return res.text();
}

function saveCast(id: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "application/x-asciicast" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = `session-${id}.cast`;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function SessionsPage({ portal }: { portal: Portal }) {
  usePageTitle(portal === "admin" ? "Sessions" : "My sessions");
  const { query } = useLocation();
  const applied = {
    kind: query.get("kind") ?? "",
    open: query.get("open") ?? "",
    recorded: query.get("recorded") ?? "",
    host_id: query.get("host_id") ?? "",
    user_id: portal === "admin" ? (query.get("user_id") ?? "") : "",
    since: query.get("since") ?? "",
    until: query.get("until") ?? "",
  };
  const offset = Number(query.get("offset") ?? 0) || 0;
  const [form, setForm] = useState({ ...applied, since: isoToLocalInput(applied.since || null), until: isoToLocalInput(applied.until || null) });
  const list = useResource(
    (signal) =>
      api.get<{ sessions: SessionRow[]; total: number; limit: number; offset: number }>(
        `${apiBase(portal)}${qs({ ...applied, limit: PAGE, offset })}`,
        signal,
      ),
    [applied.kind, applied.open, applied.recorded, applied.host_id, applied.user_id, applied.since, applied.until, offset],
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setQuery({
      kind: form.kind,
      open: form.open,
      recorded: form.recorded,
      host_id: form.host_id.trim(),
      user_id: portal === "admin" ? form.user_id.trim() : undefined,
      since: localInputToIso(form.since) ?? undefined,
      until: localInputToIso(form.until) ?? undefined,
      offset: undefined,
    });
  };
  const reset = () => {
    setForm({ kind: "", open: "", recorded: "", host_id: "", user_id: "", since: "", until: "" });
    setQuery({ kind: undefined, open: undefined, recorded: undefined, host_id: undefined, user_id: undefined, since: undefined, until: undefined, offset: undefined });
  };
  const upd = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));
  const err = list.error;

  return (
    <section>
      <div className="page-head">
        <h1>{portal === "admin" ? "Sessions" : "My sessions"}</h1>
        <div className="actions">
          <button type="button" onClick={list.reload}>
            Refresh
          </button>
        </div>
      </div>
      <p className="muted">
        Every SSH and desktop session: who, from where, when, for how long, the bytes each way and how it ended.
        {portal === "user" ? " Sessions on your host that were recorded can be replayed here." : ""}
      </p>
      <form className="filters" aria-label="Filter sessions" onSubmit={submit}>
        <Field label="Kind">
          {(id) => (
            <select id={id} value={form.kind} onChange={upd("kind")}>
              <option value="">any</option>
              <option value="ssh">SSH</option>
              <option value="desktop">desktop</option>
            </select>
          )}
        </Field>
        <Field label="State">
          {(id) => (
            <select id={id} value={form.open} onChange={upd("open")}>
              <option value="">any</option>
              <option value="true">open</option>
              <option value="false">ended</option>
            </select>
          )}
        </Field>
        <Field label="Recording">
          {(id) => (
            <select id={id} value={form.recorded} onChange={upd("recorded")}>
              <option value="">any</option>
              <option value="true">recorded</option>
              <option value="false">not recorded</option>
            </select>
          )}
        </Field>
        <Field label="Host id" error={fieldError(err, "query.host_id")}>
          {(id, d) => <input id={id} aria-describedby={d} className="mono" value={form.host_id} onChange={upd("host_id")} placeholder="UUID" />}
        </Field>
        {portal === "admin" ? (
          <Field label="User id" error={fieldError(err, "query.user_id")}>
            {(id, d) => <input id={id} aria-describedby={d} className="mono" value={form.user_id} onChange={upd("user_id")} placeholder="UUID" />}
          </Field>
        ) : null}
        <Field label="Started since" error={fieldError(err, "query.since")}>
          {(id, d) => <input id={id} aria-describedby={d} type="datetime-local" value={form.since} onChange={upd("since")} />}
        </Field>
        <Field label="Started until" error={fieldError(err, "query.until")}>
          {(id, d) => <input id={id} aria-describedby={d} type="datetime-local" value={form.until} onChange={upd("until")} />}
        </Field>
        <div className="filter-buttons">
          <button type="submit" className="primary">
            Apply
          </button>
          <button type="button" onClick={reset}>
            Reset
          </button>
        </div>
      </form>
      <ErrorMessage error={list.error} />
      {!list.data ? (
        list.error ? null : <Loading />
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Sessions</caption>
              <thead>
                <tr>
                  <th scope="col">Started</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Who</th>
                  <th scope="col">Host</th>
                  <th scope="col">From</th>
                  <th scope="col">Duration</th>
                  <th scope="col">In / out</th>
                  <th scope="col">Ended</th>
                  <th scope="col">Recording</th>
                </tr>
              </thead>
              <tbody>
                {list.data.sessions.length === 0 ? (
                  <tr>
                    <td colSpan={9} className="muted">
                      No sessions match.
                    </td>
                  </tr>
                ) : (
                  list.data.sessions.map((s) => (
                    <tr key={s.id}>
                      <td>
                        <Link to={`${base(portal)}/${s.id}`}>
                          <Time value={s.started_at} />
                        </Link>
                      </td>
                      <td>{s.kind === "ssh" ? "SSH" : "desktop"}</td>
                      <td className="small-text">
                        {portal === "admin" && s.username ? (
                          <Link to={`/admin/users/${s.user_id}`}>{s.username}</Link>
                        ) : (
                          (s.username ?? <span className="mono">{s.user_id.slice(0, 8)}</span>)
                        )}
                        <br />
                        <span className="muted">
                          {s.login}
                          {s.method ? ` · ${s.method}` : ""}
                        </span>
                      </td>
                      <td className="mono small-text">
                        {portal === "admin" ? (
                          <Link to={`/admin/hosts/${s.host_id}`}>{s.host_short_id ?? s.host_id.slice(0, 8)}</Link>
                        ) : (
                          (s.host_short_id ?? s.host_id.slice(0, 8))
                        )}
                      </td>
                      <td className="mono small-text">{s.source_ip ?? "—"}</td>
                      <td>{formatDuration(s.duration_ms)}</td>
                      <td className="small-text">
                        {formatBytes(s.bytes_in)} / {formatBytes(s.bytes_out)}
                      </td>
                      <td className="small-text">{reasonText(s)}</td>
                      <td className="small-text">
                        {s.has_recording ? (
                          <Link to={`${base(portal)}/${s.id}`}>
                            Play ({formatBytes(s.recording_bytes)}
                            {s.recording_truncated ? ", truncated" : ""})
                          </Link>
                        ) : s.recording !== "off" && s.kind === "ssh" ? (
                          <span className="muted">{s.recording}, nothing recorded</span>
                        ) : (
                          <span className="muted">—</span>
                        )}
                      </td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
          <Pagination label="Sessions" total={list.data.total} limit={list.data.limit} offset={list.data.offset} onPage={(o) => setQuery({ offset: o || undefined })} />
        </>
      )}
    </section>
  );
}

/** The player: asciinema-player (bundled, no CDN), loaded on demand into its own chunk. */
function Player({ cast }: { cast: string }) {
  const el = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    let disposed = false;
    let player: { dispose(): void } | undefined;
    void import("asciinema-player").then(
      (AsciinemaPlayer) => {
        if (disposed || !el.current) return;
        player = AsciinemaPlayer.create({ data: cast }, el.current, { fit: "width", idleTimeLimit: 2, controls: true, preload: true });
      },
      () => setError("The player could not be loaded."),
    );
    return () => {
      disposed = true;
      player?.dispose();
    };
  }, [cast]);
  return (
    <>
      {error ? <Notice kind="warn">{error}</Notice> : null}
      <div ref={el} className="session-player" data-testid="session-player" />
    </>
  );
}

export function SessionDetailPage({ id, portal }: { id: string; portal: Portal }) {
  usePageTitle("Session");
  const detail = useResource((signal) => api.get<{ session: SessionRow }>(`${apiBase(portal)}/${encodeURIComponent(id)}`, signal), [id, portal]);
  const s = detail.data?.session;
  const cast = useResource(
    (signal) => (s?.has_recording ? fetchRecording(portal, id, signal) : Promise.resolve(null)),
    [id, portal, s?.has_recording],
  );
  return (
    <section>
      <p>
        <Link to={base(portal)}>← Sessions</Link>
      </p>
      <div className="page-head">
        <h1>{s ? `${s.kind === "ssh" ? "SSH" : "Desktop"} session ${s.host_short_id ? `on ${s.host_short_id}` : ""}` : "Session"}</h1>
        <div className="actions">
          {cast.data ? (
            <button type="button" onClick={() => saveCast(id, cast.data!)}>
              Download .cast
            </button>
          ) : null}
        </div>
      </div>
      <ErrorMessage error={detail.error} />
      {!s ? (
        detail.error ? null : <Loading />
      ) : (
        <>
          <dl className="props">
            <dt>Who</dt>
            <dd>
              {s.username ?? s.user_id} (login <span className="mono">{s.login}</span>
              {s.method ? `, ${s.method}` : ""})
            </dd>
            <dt>From</dt>
            <dd className="mono">{s.source_ip ?? "—"}</dd>
            <dt>Started</dt>
            <dd>
              <Time value={s.started_at} />
            </dd>
            <dt>Ended</dt>
            <dd>{s.open ? "still open" : <Time value={s.ended_at} />}</dd>
            <dt>Duration</dt>
            <dd>{formatDuration(s.duration_ms)}</dd>
            <dt>Bytes in / out</dt>
            <dd>
              {formatBytes(s.bytes_in)} / {formatBytes(s.bytes_out)}
            </dd>
            <dt>How it ended</dt>
            <dd>{reasonText(s)}</dd>
            <dt>Recording</dt>
            <dd>
              {s.recording === "off" ? "off" : `${s.recording === "input" ? "output and input" : "output"}, ${formatBytes(s.recording_bytes)}`}
              {s.recording_truncated ? " (truncated: the size limit was reached or the store fell behind)" : ""}
            </dd>
          </dl>
          {s.has_recording ? (
            <>
              <h2>Replay</h2>
              <ErrorMessage error={cast.error} title="The recording could not be loaded" />
              {cast.data ? <Player cast={cast.data} /> : cast.error ? null : <Loading what="Loading the recording" />}
            </>
          ) : s.kind === "ssh" ? (
            <p className="muted">This session has no recording.</p>
          ) : null}
        </>
      )}
    </section>
  );
}

type Mode = "off" | "output" | "input";

/**
 * The admin's recording policy of a user or a host (PUT …/session-recording): inherit, off,
 * output, or output and input. It applies to SSH sessions that start afterwards.
 */
export function RecordingPolicyCard(props: { kind: "user" | "host"; id: string; value: Mode | null; onSaved: () => void }) {
  const [mode, setMode] = useState<string>(props.value ?? "");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [saved, setSaved] = useState(false);
  const path = props.kind === "user" ? `/v1/admin/users/${props.id}/session-recording` : `/v1/admin/hosts/${props.id}/session-recording`;
  const inherit = props.kind === "user" ? "inherit (server default)" : "inherit (the owner's, else the server default)";
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setSaved(false);
    try {
      await api.put(path, { session_recording: mode === "" ? null : mode });
      setSaved(true);
      props.onSaved();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card" aria-labelledby={`recording-${props.kind}`}>
      <h2 id={`recording-${props.kind}`}>Session recording</h2>
      <form onSubmit={save}>
        <Field label="SSH sessions on a terminal" hint="Users are told in their session when it is recorded. Input includes every keystroke.">
          {(id, d) => (
            <select id={id} aria-describedby={d} value={mode} onChange={(e) => setMode(e.target.value)}>
              <option value="">{inherit}</option>
              <option value="off">off</option>
              <option value="output">output</option>
              <option value="input">output and input</option>
            </select>
          )}
        </Field>
        <ErrorMessage error={error} />
        {saved ? <Notice kind="success">Saved: new sessions follow it.</Notice> : null}
        <div className="button-row">
          <button type="submit" className="primary" disabled={busy}>
            Save
          </button>
          <Link to={`/admin/sessions?${props.kind === "user" ? "user_id" : "host_id"}=${props.id}`}>Sessions</Link>
        </div>
      </form>
    </section>
  );
}
