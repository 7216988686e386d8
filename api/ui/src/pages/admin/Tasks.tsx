import { useState } from "react";
import { api, qs } from "../../api";
import { Badge, ConfirmButton, ErrorMessage, Field, Loading, Notice, Pagination, TaskProgress, Time, useResource } from "../../components";
import { useLive, useLiveReload } from "../../live";
import { Link, setQuery, useLocation, usePageTitle } from "../../router";
import { isTerminal, type Task, TASK_KINDS } from "../../types";
import { TestResultView } from "./Egress";

const PAGE = 25;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CANCELABLE = new Set(["host.create", "host.start", "host.rebuild", "host.ensure-running", "egress.test"]);

export function TasksPage() {
  usePageTitle("Tasks");
  const { query } = useLocation();
  const status = query.get("status") ?? "";
  const kind = query.get("kind") ?? "";
  const hostId = query.get("host_id") ?? "";
  const offset = Number(query.get("offset") ?? 0) || 0;
  const [hostInput, setHostInput] = useState(hostId);
  const list = useResource(
    (signal) =>
      api.get<{ tasks: Task[]; total: number; limit: number; offset: number }>(
        `/v1/admin/tasks${qs({ status, kind, host_id: hostId, limit: PAGE, offset })}`,
        signal,
      ),
    [status, kind, hostId, offset],
  );
  // Progress of listed tasks is patched in place; a new task (or a status a filter cares about) reloads.
  useLive((m) => {
    if (m.type !== "task") return;
    list.setData((d) => (d ? { ...d, tasks: d.tasks.map((t) => (t.id === m.data.id ? { ...t, ...m.data } : t)) } : d));
  });
  useLiveReload(list.reload, (m) => m.type === "task" && (!list.data?.tasks.some((t) => t.id === m.data.id) || !!status), 800);

  return (
    <section>
      <h1>Tasks</h1>
      <form
        className="filters"
        aria-label="Filter tasks"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ host_id: hostInput.trim(), offset: undefined });
        }}
      >
        <Field label="Status">
          {(id) => (
            <select id={id} value={status} onChange={(e) => setQuery({ status: e.target.value, offset: undefined })}>
              <option value="">any</option>
              {["pending", "running", "succeeded", "failed", "canceled"].map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Kind">
          {(id) => (
            <select id={id} value={kind} onChange={(e) => setQuery({ kind: e.target.value, offset: undefined })}>
              <option value="">any</option>
              {TASK_KINDS.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Host id" error={hostInput && !UUID.test(hostInput.trim()) ? "must be a host UUID" : undefined}>
          {(id, d) => <input id={id} aria-describedby={d} className="mono" value={hostInput} onChange={(e) => setHostInput(e.target.value)} placeholder="UUID" />}
        </Field>
        <div className="filter-buttons">
          <button type="submit" disabled={!!hostInput && !UUID.test(hostInput.trim())}>
            Apply
          </button>
          <button
            type="button"
            onClick={() => {
              setHostInput("");
              setQuery({ status: undefined, kind: undefined, host_id: undefined, offset: undefined });
            }}
          >
            Reset
          </button>
        </div>
      </form>
      <ErrorMessage error={list.error} />
      {!list.data ? (
        <Loading />
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Tasks</caption>
              <thead>
                <tr>
                  <th scope="col">Created</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Status</th>
                  <th scope="col">Progress</th>
                  <th scope="col">Host</th>
                  <th scope="col">Requested by</th>
                </tr>
              </thead>
              <tbody>
                {list.data.tasks.length === 0 ? (
                  <tr>
                    <td colSpan={6} className="muted">
                      No tasks match.
                    </td>
                  </tr>
                ) : (
                  list.data.tasks.map((t) => (
                    <tr key={t.id}>
                      <td>
                        <Link to={`/admin/tasks/${t.id}`}>
                          <Time value={t.created_at} />
                        </Link>
                      </td>
                      <td className="mono">{t.kind}</td>
                      <td>
                        <Badge value={t.status} />
                        {t.error_code ? <div className="small-text mono">{t.error_code}</div> : null}
                      </td>
                      <td>
                        <progress max={100} value={t.progress_percent} aria-label={`Progress of ${t.kind}`} /> {t.progress_percent}%
                        {t.progress_message ? <div className="small-text muted">{t.progress_message}</div> : null}
                      </td>
                      <td>{t.host_id ? <Link to={`/admin/hosts/${t.host_id}`} className="mono">{t.host_id.slice(0, 8)}</Link> : <span className="muted">—</span>}</td>
                      <td className="small-text mono">{t.requested_by?.startsWith("system:") ? t.requested_by : (t.requested_by ?? "").slice(0, 8)}</td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
          <Pagination label="Tasks" total={list.data.total} limit={list.data.limit} offset={list.data.offset} onPage={(o) => setQuery({ offset: o || undefined })} />
        </>
      )}
    </section>
  );
}

export function TaskDetailPage({ id }: { id: string }) {
  const res = useResource((signal) => api.get<{ task: Task }>(`/v1/admin/tasks/${id}`, signal), [id]);
  usePageTitle(res.data ? `Task ${res.data.task.kind}` : "Task");
  useLive((m) => {
    if (m.type === "task" && m.data.id === id) res.setData((d) => (d ? { task: { ...d.task, ...m.data } } : d));
  });
  useLiveReload(res.reload, () => false);
  const [note, setNote] = useState<string | undefined>(undefined);
  const t = res.data?.task;
  if (!t) return res.error ? <ErrorMessage error={res.error} /> : <Loading />;
  const result = t.kind === "egress.test" && t.result && typeof t.result === "object" && "results" in (t.result as object) ? t.result : null;
  return (
    <section>
      <p className="breadcrumbs">
        <Link to="/admin/tasks">Tasks</Link> / <span className="mono">{t.id.slice(0, 8)}</span>
      </p>
      <h1>
        Task <span className="mono">{t.kind}</span>
      </h1>
      {note ? <Notice kind="success">{note}</Notice> : null}
      <TaskProgress task={t} />
      <section className="card">
        <h2>Details</h2>
        <dl className="props">
          <dt>Id</dt>
          <dd className="mono small-text break">{t.id}</dd>
          <dt>Status</dt>
          <dd>
            <Badge value={t.status} /> {t.cancel_requested ? <span className="muted">(cancel requested)</span> : null}
          </dd>
          <dt>Host</dt>
          <dd>{t.host_id ? <Link to={`/admin/hosts/${t.host_id}`} className="mono">{t.host_id}</Link> : "—"}</dd>
          <dt>Requested by</dt>
          <dd className="mono small-text">{t.requested_by}</dd>
          <dt>Attempt</dt>
          <dd>{t.attempt}</dd>
          <dt>Created</dt>
          <dd>
            <Time value={t.created_at} />
          </dd>
          <dt>Started</dt>
          <dd>
            <Time value={t.started_at} />
          </dd>
          <dt>Finished</dt>
          <dd>
            <Time value={t.finished_at} />
          </dd>
        </dl>
        {!isTerminal(t.status) && CANCELABLE.has(t.kind) && !t.cancel_requested ? (
          <ConfirmButton
            label="Cancel task"
            title="Cancel task"
            danger
            message={<p>Cancel this {t.kind} task? A running start or rebuild stops the host at its next step.</p>}
            action={async () => {
              await api.post(`/v1/admin/tasks/${t.id}/cancel`);
              setNote("Cancel requested.");
              res.reload();
            }}
          />
        ) : null}
      </section>
      {result ? (
        <section className="card">
          <h2>Egress test result</h2>
          <TestResultView result={result as never} />
        </section>
      ) : null}
    </section>
  );
}
