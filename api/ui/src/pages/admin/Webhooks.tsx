import { type FormEvent, useState } from "react";
import { api, ApiError, qs } from "../../api";
import { Badge, ConfirmButton, Dialog, ErrorMessage, Field, fieldError, Loading, Notice, Pagination, SecretOnce, Time, useResource } from "../../components";
import { setQuery, useLocation, usePageTitle } from "../../router";
import type { WebhookDeliveryView, WebhookView, WebhookWithSecretView } from "../../../../../shared/views/webhooks.js";

const PAGE = 25;
const DELIVERIES = 20;

/** Event types as the API takes them: one per line or comma-separated. */
const parseTypes = (v: string) =>
  v
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * Signed webhooks (docs/api.md#webhooks): list, create (the signing secret shown once),
 * enable/disable, send a test event, rotate the secret, delete, and each one's delivery log.
 */
export function WebhooksPage() {
  usePageTitle("Webhooks");
  const { query } = useLocation();
  const offset = Number(query.get("offset") ?? 0) || 0;
  const list = useResource(
    (signal) => api.get<{ webhooks: WebhookView[]; total: number; limit: number; offset: number }>(`/v1/admin/webhooks${qs({ limit: PAGE, offset })}`, signal),
    [offset],
  );
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<WebhookWithSecretView | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [actionError, setActionError] = useState<unknown>(undefined);

  const act = async (fn: () => Promise<unknown>) => {
    setActionError(undefined);
    try {
      await fn();
      list.reload();
    } catch (e) {
      setActionError(e);
    }
  };

  return (
    <section>
      <div className="page-head">
        <h1>Webhooks</h1>
        <div className="actions">
          <button type="button" onClick={list.reload}>
            Refresh
          </button>
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            Create webhook
          </button>
        </div>
      </div>
      <p className="muted">
        Each webhook receives the events of its types as signed HTTP POSTs (HMAC-SHA256 over <code>timestamp.body</code>, see the API guide), retried with
        back-off until the receiver answers 2xx.
      </p>
      <ErrorMessage error={list.error} />
      <ErrorMessage error={actionError} title="The action failed" />
      {!list.data ? (
        list.error ? null : <Loading />
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Webhooks</caption>
              <thead>
                <tr>
                  <th scope="col">URL</th>
                  <th scope="col">Event types</th>
                  <th scope="col">State</th>
                  <th scope="col">Created</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.data.webhooks.length === 0 ? (
                  <tr>
                    <td colSpan={5} className="muted">
                      No webhooks yet.
                    </td>
                  </tr>
                ) : (
                  list.data.webhooks.map((w) => (
                    <tr key={w.id}>
                      <th scope="row" className="mono small-text">
                        {w.url}
                        {w.description ? <div className="muted">{w.description}</div> : null}
                      </th>
                      <td className="mono small-text">{w.event_types.join(", ")}</td>
                      <td>
                        <Badge value={w.enabled ? "enabled" : "disabled"} />
                      </td>
                      <td>
                        <Time value={w.created_at} />
                      </td>
                      <td className="actions">
                        <button type="button" className="small" onClick={() => setOpen(open === w.id ? null : w.id)} aria-expanded={open === w.id}>
                          Deliveries
                        </button>
                        <button type="button" className="small" onClick={() => act(() => api.patch(`/v1/admin/webhooks/${w.id}`, { enabled: !w.enabled }))}>
                          {w.enabled ? "Disable" : "Enable"}
                        </button>
                        <button
                          type="button"
                          className="small"
                          disabled={!w.enabled}
                          onClick={() =>
                            act(async () => {
                              await api.post(`/v1/admin/webhooks/${w.id}/test`);
                              setOpen(w.id);
                            })
                          }
                        >
                          Send test event
                        </button>
                        <ConfirmButton
                          label="Rotate secret"
                          className="small"
                          title="Rotate the signing secret"
                          message="A new secret is generated and shown once; deliveries from now on are signed with it only. Update the receiver first."
                          action={async () => {
                            const res = await api.post<WebhookWithSecretView>(`/v1/admin/webhooks/${w.id}/rotate-secret`);
                            setSecret(res.body);
                          }}
                        />
                        <ConfirmButton
                          label="Delete"
                          danger
                          className="small danger"
                          title="Delete the webhook"
                          message={
                            <p>
                              Delete the webhook to <code>{w.url}</code> and its delivery log? Deliveries not made yet are dropped.
                            </p>
                          }
                          action={async () => {
                            await api.del(`/v1/admin/webhooks/${w.id}`);
                            if (open === w.id) setOpen(null);
                            list.reload();
                          }}
                        />
                      </td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
          <Pagination label="Webhooks" total={list.data.total} limit={list.data.limit} offset={list.data.offset} onPage={(o) => setQuery({ offset: o || undefined })} />
        </>
      )}
      {open ? <DeliveryLog key={open} webhookId={open} url={list.data?.webhooks.find((w) => w.id === open)?.url} /> : null}
      <CreateWebhookDialog
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(created) => {
          setCreating(false);
          setSecret(created);
          list.reload();
        }}
      />
      <Dialog open={secret !== null} title="Signing secret" onClose={() => setSecret(null)}>
        {secret ? (
          <div>
            <p>
              The webhook to <code>{secret.webhook.url}</code> signs every delivery with this secret.
            </p>
            <SecretOnce label="Signing secret" value={secret.secret} />
            <div className="actions">
              <button type="button" className="primary" onClick={() => setSecret(null)}>
                Done
              </button>
            </div>
          </div>
        ) : null}
      </Dialog>
    </section>
  );
}

function DeliveryLog({ webhookId, url }: { webhookId: string; url: string | undefined }) {
  const [offset, setOffset] = useState(0);
  const [status, setStatus] = useState("");
  const log = useResource(
    (signal) =>
      api.get<{ deliveries: WebhookDeliveryView[]; total: number; limit: number; offset: number }>(
        `/v1/admin/webhooks/${webhookId}/deliveries${qs({ status, limit: DELIVERIES, offset })}`,
        signal,
      ),
    [webhookId, status, offset],
  );
  return (
    <section aria-label="Delivery log">
      <div className="page-head">
        <h2>
          Delivery log{url ? <span className="muted mono small-text"> · {url}</span> : null}
        </h2>
        <div className="actions">
          <select aria-label="Delivery status" value={status} onChange={(e) => {
              setStatus(e.target.value);
              setOffset(0);
            }}>
            <option value="">any status</option>
            <option value="pending">pending</option>
            <option value="succeeded">succeeded</option>
            <option value="failed">failed</option>
          </select>
          <button type="button" onClick={log.reload}>
            Refresh
          </button>
        </div>
      </div>
      <ErrorMessage error={log.error} />
      {!log.data ? (
        log.error ? null : <Loading />
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Deliveries</caption>
              <thead>
                <tr>
                  <th scope="col">Created</th>
                  <th scope="col">Event</th>
                  <th scope="col">Status</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Last answer</th>
                  <th scope="col">Next attempt</th>
                </tr>
              </thead>
              <tbody>
                {log.data.deliveries.length === 0 ? (
                  <tr>
                    <td colSpan={6} className="muted">
                      No deliveries yet.
                    </td>
                  </tr>
                ) : (
                  log.data.deliveries.map((d) => (
                    <tr key={d.id}>
                      <td>
                        <Time value={d.created_at} />
                      </td>
                      <td className="mono small-text">
                        {d.event_type}
                        <div className="muted">{d.event_id.slice(0, 8)}</div>
                      </td>
                      <td>
                        <Badge value={d.status} />
                      </td>
                      <td>{d.attempts}</td>
                      <td className="small-text">
                        {d.response_status !== null ? `HTTP ${d.response_status}` : null}
                        {d.error ? <div className="mono">{d.error}</div> : null}
                        {d.duration_ms !== null ? <div className="muted">{d.duration_ms} ms</div> : null}
                        {d.last_attempt_at ? <Time value={d.last_attempt_at} /> : null}
                      </td>
                      <td>{d.next_attempt_at ? <Time value={d.next_attempt_at} /> : <span className="muted">—</span>}</td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
          <Pagination label="Deliveries" total={log.data.total} limit={log.data.limit} offset={log.data.offset} onPage={setOffset} />
        </>
      )}
    </section>
  );
}

function CreateWebhookDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: (w: WebhookWithSecretView) => void }) {
  const [url, setUrl] = useState("");
  const [types, setTypes] = useState("");
  const [description, setDescription] = useState("");
  const [enabled, setEnabled] = useState(true);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);

  const reset = () => {
    setUrl("");
    setTypes("");
    setDescription("");
    setEnabled(true);
    setError(undefined);
  };
  const close = () => {
    reset();
    onClose();
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const res = await api.post<WebhookWithSecretView>("/v1/admin/webhooks", {
        url: url.trim(),
        event_types: parseTypes(types),
        description: description.trim() || null,
        enabled,
      });
      reset();
      onCreated(res.body);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  // Per-entry problems come as `event_types.<n>`.
  const typeError =
    fieldError(error, "event_types") ?? (error instanceof ApiError ? error.details.find((d) => d.field.startsWith("event_types."))?.message : undefined);

  return (
    <Dialog open={open} title="Create webhook" onClose={close}>
      <form onSubmit={submit}>
        <ErrorMessage error={error} />
        <Notice>
          Events are sent to the URL you choose, private addresses included: only point it at a receiver you trust. The signing secret is shown once, after
          creation.
        </Notice>
        <Field label="URL" hint="http or https, no user:password@ in it." error={fieldError(error, "url")}>
          {(id, d) => (
            <input id={id} aria-describedby={d} required type="url" className="mono" spellCheck={false} value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://receiver.example/hooks/ccp" />
          )}
        </Field>
        <Field label="Event types" hint="Exact types or prefixes such as egress.* (comma or newline separated); * for every event." error={typeError}>
          {(id, d) => (
            <textarea id={id} aria-describedby={d} required rows={3} className="mono" spellCheck={false} value={types} onChange={(e) => setTypes(e.target.value)} placeholder={"egress.*\nhost.created"} />
          )}
        </Field>
        <Field label="Description (optional)" error={fieldError(error, "description")}>
          {(id, d) => <input id={id} aria-describedby={d} value={description} onChange={(e) => setDescription(e.target.value)} />}
        </Field>
        <label className="checkbox">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled
        </label>
        <div className="actions">
          <button type="button" onClick={close}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? "Creating…" : "Create webhook"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
