import { type FormEvent, useState } from "react";
import { api, ApiError, getSession, qs } from "../../api";
import { Badge, ErrorMessage, Field, fieldError, isoToLocalInput, Loading, localInputToIso, Pagination, Time, useResource } from "../../components";
import { Link, setQuery, useLocation, usePageTitle } from "../../router";
import type { EventRow } from "../../types";

const PAGE = 50;

/**
 * Download the NDJSON export of the current filters (GET /v1/admin/events/export, docs/api.md#export).
 * The token must not go in a URL, so this is a fetch with the Authorization header whose body is
 * saved as a file, not a plain link.
 */
async function downloadExport(query: Record<string, string>): Promise<void> {
  const s = getSession();
  const res = await fetch(`/v1/admin/events/export${qs(query)}`, {
    headers: s ? { authorization: `Bearer ${s.token}` } : {},
    cache: "no-store",
  });
  if (!res.ok) {
    const e = (await res.json().catch(() => ({}))) as { error?: string; code?: string };
    throw new ApiError(res.status, e.code ?? "http_error", e.error ?? `The server answered ${res.status}.`);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = `events-${new Date().toISOString().replace(/[:.]/g, "-")}.ndjson`;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The audit trail (GET /v1/admin/events) with every filter of docs/api.md#events. */
export function EventsPage() {
  usePageTitle("Events");
  const { query } = useLocation();
  const applied = {
    type: query.get("type") ?? "",
    level: query.get("level") ?? "",
    user_id: query.get("user_id") ?? "",
    host_id: query.get("host_id") ?? "",
    since: query.get("since") ?? "",
    until: query.get("until") ?? "",
  };
  const offset = Number(query.get("offset") ?? 0) || 0;
  const [form, setForm] = useState({
    ...applied,
    since: isoToLocalInput(applied.since || null),
    until: isoToLocalInput(applied.until || null),
  });
  const list = useResource(
    (signal) =>
      api.get<{ events: EventRow[]; total: number; limit: number; offset: number }>(`/v1/admin/events${qs({ ...applied, limit: PAGE, offset })}`, signal),
    [applied.type, applied.level, applied.user_id, applied.host_id, applied.since, applied.until, offset],
  );

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setQuery({
      type: form.type.trim(),
      level: form.level,
      user_id: form.user_id.trim(),
      host_id: form.host_id.trim(),
      since: localInputToIso(form.since) ?? undefined,
      until: localInputToIso(form.until) ?? undefined,
      offset: undefined,
    });
  };
  const upd = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(undefined);
  const exportNdjson = async () => {
    setExporting(true);
    setExportError(undefined);
    try {
      await downloadExport(applied);
    } catch (e) {
      setExportError(e);
    } finally {
      setExporting(false);
    }
  };
  const err = list.error;

  return (
    <section>
      <div className="page-head">
        <h1>Events</h1>
        <div className="actions">
          <button type="button" onClick={exportNdjson} disabled={exporting} title="Every event matching the filters, oldest first, one JSON object per line">
            {exporting ? "Exporting…" : "Export NDJSON"}
          </button>
          <button type="button" onClick={list.reload}>
            Refresh
          </button>
        </div>
      </div>
      <ErrorMessage error={exportError} title="Export failed" />
      <form className="filters" aria-label="Filter events" onSubmit={submit}>
        <Field label="Type" hint="Exact, or a prefix such as host.*" error={fieldError(err, "query.type")}>
          {(id, d) => <input id={id} aria-describedby={d} className="mono" value={form.type} onChange={upd("type")} placeholder="host.*" />}
        </Field>
        <Field label="Level">
          {(id) => (
            <select id={id} value={form.level} onChange={upd("level")}>
              <option value="">any</option>
              <option value="info">info</option>
              <option value="warn">warn</option>
              <option value="error">error</option>
            </select>
          )}
        </Field>
        <Field label="User id" error={fieldError(err, "query.user_id")}>
          {(id, d) => <input id={id} aria-describedby={d} className="mono" value={form.user_id} onChange={upd("user_id")} placeholder="UUID" />}
        </Field>
        <Field label="Host id" error={fieldError(err, "query.host_id")}>
          {(id, d) => <input id={id} aria-describedby={d} className="mono" value={form.host_id} onChange={upd("host_id")} placeholder="UUID" />}
        </Field>
        <Field label="Since" error={fieldError(err, "query.since")}>
          {(id, d) => <input id={id} aria-describedby={d} type="datetime-local" value={form.since} onChange={upd("since")} />}
        </Field>
        <Field label="Until" error={fieldError(err, "query.until")}>
          {(id, d) => <input id={id} aria-describedby={d} type="datetime-local" value={form.until} onChange={upd("until")} />}
        </Field>
        <div className="filter-buttons">
          <button type="submit" className="primary">
            Apply
          </button>
          <button
            type="button"
            onClick={() => {
              setForm({ type: "", level: "", user_id: "", host_id: "", since: "", until: "" });
              setQuery({ type: undefined, level: undefined, user_id: undefined, host_id: undefined, since: undefined, until: undefined, offset: undefined });
            }}
          >
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
              <caption className="visually-hidden">Events</caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Level</th>
                  <th scope="col">Type</th>
                  <th scope="col">Message</th>
                  <th scope="col">User / host</th>
                </tr>
              </thead>
              <tbody>
                {list.data.events.length === 0 ? (
                  <tr>
                    <td colSpan={5} className="muted">
                      No events match.
                    </td>
                  </tr>
                ) : (
                  list.data.events.map((ev) => (
                    <tr key={ev.id}>
                      <td>
                        <Time value={ev.created_at} />
                      </td>
                      <td>
                        <Badge value={ev.level} />
                      </td>
                      <td className="mono small-text">
                        <button type="button" className="link-button mono" onClick={() => setQuery({ type: ev.type, offset: undefined })} title="Show only this type">
                          {ev.type}
                        </button>
                      </td>
                      <td>
                        {ev.message}
                        {Object.keys(ev.metadata ?? {}).length ? (
                          <details>
                            <summary>metadata</summary>
                            <pre className="small-text">{JSON.stringify(ev.metadata, null, 2)}</pre>
                          </details>
                        ) : null}
                      </td>
                      <td className="small-text">
                        {ev.user_id ? (
                          <Link to={`/admin/users/${ev.user_id}`} className="mono">
                            user {ev.user_id.slice(0, 8)}
                          </Link>
                        ) : null}
                        {ev.user_id && ev.host_id ? <br /> : null}
                        {ev.host_id ? (
                          <Link to={`/admin/hosts/${ev.host_id}`} className="mono">
                            host {ev.host_id.slice(0, 8)}
                          </Link>
                        ) : null}
                      </td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
          <Pagination label="Events" total={list.data.total} limit={list.data.limit} offset={list.data.offset} onPage={(o) => setQuery({ offset: o || undefined })} />
        </>
      )}
    </section>
  );
}
