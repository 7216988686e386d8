import { type FormEvent, useState } from "react";
import { api } from "../../api";
import {
  Badge,
  ConfirmButton,
  Dialog,
  ErrorMessage,
  Field,
  fieldError,
  isoToLocalInput,
  Loading,
  localInputToIso,
  Notice,
  SecretOnce,
  Time,
  useResource,
} from "../../components";
import { useLiveReload } from "../../live";
import { Link, navigate, usePageTitle } from "../../router";
import type { AdminHost, User } from "../../types";
import { RecordingPolicyCard } from "../Sessions";
import { SshKeys } from "../SshKeys";
import { CreateHostDialog } from "./Hosts";
import { UserIdlePolicyCard } from "./IdlePolicy";
import { userState } from "./Users";

export function UserDetailPage({ id }: { id: string }) {
  const res = useResource((signal) => api.get<{ user: User; hosts: AdminHost[] }>(`/v1/admin/users/${id}`, signal), [id]);
  const u = res.data?.user;
  usePageTitle(u ? `User ${u.username}` : "User");
  const hostIds = new Set(res.data?.hosts.map((h) => h.id) ?? []);
  useLiveReload(res.reload, (m) => (m.type === "host" ? "user_id" in m.data && m.data.user_id === id : m.type === "host_removed" ? hostIds.has(m.data.id) : false));
  const [note, setNote] = useState<string | undefined>(undefined);
  const [secret, setSecret] = useState<string | null>(null);
  const [expiryOpen, setExpiryOpen] = useState(false);
  const [hostOpen, setHostOpen] = useState(false);

  if (res.error && !u) {
    return (
      <section>
        <h1>User</h1>
        <ErrorMessage error={res.error} />
        <Link to="/admin/users">Back to users</Link>
      </section>
    );
  }
  if (!u) return <Loading />;
  const isAdmin = u.role === "admin";

  return (
    <section>
      <p className="breadcrumbs">
        <Link to="/admin/users">Users</Link> / {u.username}
      </p>
      <div className="page-head">
        <h1>
          {u.username} <Badge value={userState(u)} label="State" />
        </h1>
      </div>
      {note ? <Notice kind="success">{note}</Notice> : null}
      <ErrorMessage error={res.error} />
      <div className="grid">
        <section className="card" aria-labelledby="account-heading">
          <h2 id="account-heading">Account</h2>
          <dl className="props">
            <dt>Role</dt>
            <dd>{u.role}</dd>
            <dt>Status</dt>
            <dd>{u.status}</dd>
            <dt>Expires</dt>
            <dd>{u.expires_at ? <Time value={u.expires_at} /> : "never"}</dd>
            <dt>Created</dt>
            <dd>
              <Time value={u.created_at} />
            </dd>
            <dt>Id</dt>
            <dd className="mono small-text break">{u.id}</dd>
          </dl>
          {isAdmin ? (
            <p className="hint">The admin account is protected: its password comes from the server's environment.</p>
          ) : (
            <div className="button-row">
              {u.status === "active" ? (
                <ConfirmButton
                  label="Disable"
                  title="Disable user"
                  danger
                  message={<p>Disable {u.username}? Their sessions end at once and their host is stopped.</p>}
                  action={async () => {
                    await api.patch(`/v1/admin/users/${id}`, { status: "disabled" });
                    setNote(`${u.username} is disabled.`);
                    res.reload();
                  }}
                />
              ) : (
                <ConfirmButton
                  label="Enable"
                  title="Enable user"
                  message={<p>Enable {u.username}? They can log in again; their host stays stopped until started.</p>}
                  action={async () => {
                    await api.patch(`/v1/admin/users/${id}`, { status: "active" });
                    setNote(`${u.username} is enabled.`);
                    res.reload();
                  }}
                />
              )}
              <button type="button" onClick={() => setExpiryOpen(true)}>
                Set expiry
              </button>
              <ConfirmButton
                label="Rotate password"
                title="Rotate password"
                message={<p>Generate a new password for {u.username}? The old one stops working and their sessions end.</p>}
                action={async () => {
                  const r = await api.post<{ new_password: string }>(`/v1/admin/users/${id}/rotate-password`);
                  setSecret(r.body.new_password);
                }}
              />
              <ConfirmButton
                label="Delete user"
                title="Delete user"
                danger
                confirmLabel="Delete"
                message={
                  <p>
                    Delete {u.username}? Their host{res.data!.hosts.length ? " and its home volume are" : " is"} torn down. This cannot be
                    undone.
                  </p>
                }
                action={async () => {
                  await api.del(`/v1/admin/users/${id}`);
                  navigate("/admin/users");
                }}
              />
            </div>
          )}
        </section>
        <section className="card" aria-labelledby="hosts-heading">
          <h2 id="hosts-heading">Host</h2>
          {res.data!.hosts.length === 0 ? (
            <>
              <p className="muted">No host.</p>
              {!isAdmin ? (
                <button type="button" className="primary" onClick={() => setHostOpen(true)} disabled={userState(u) !== "active"}>
                  Create host
                </button>
              ) : null}
            </>
          ) : (
            <ul className="plain">
              {res.data!.hosts.map((h) => (
                <li key={h.id}>
                  <Link to={`/admin/hosts/${h.id}`} className="mono">
                    {h.short_id}
                  </Link>{" "}
                  <Badge value={h.status} label="Host status" />
                </li>
              ))}
            </ul>
          )}
        </section>
        {!isAdmin ? <RecordingPolicyCard key={`rec:${u.id}:${u.updated_at}`} kind="user" id={u.id} value={u.session_recording} onSaved={res.reload} /> : null}
        {!isAdmin ? <UserIdlePolicyCard key={`idle:${u.id}:${u.updated_at}`} user={u} onSaved={res.reload} /> : null}
      </div>
      <SshKeys base={`/v1/admin/users/${id}/ssh-keys`} owner={`${u.username}'s`} />
      <Dialog open={secret !== null} title="New password" onClose={() => setSecret(null)}>
        {secret ? <SecretOnce label={`New password of ${u.username}`} value={secret} /> : null}
        <div className="actions">
          <button type="button" className="primary" onClick={() => setSecret(null)}>
            Done
          </button>
        </div>
      </Dialog>
      <ExpiryDialog
        open={expiryOpen}
        user={u}
        onClose={() => setExpiryOpen(false)}
        onSaved={(msg) => {
          setNote(msg);
          res.reload();
        }}
      />
      <CreateHostDialog open={hostOpen} onClose={() => setHostOpen(false)} fixedUser={u} />
    </section>
  );
}

function ExpiryDialog(props: { open: boolean; user: User; onClose: () => void; onSaved: (msg: string) => void }) {
  const [value, setValue] = useState(isoToLocalInput(props.user.expires_at));
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const save = async (expires_at: string | null) => {
    setBusy(true);
    setError(undefined);
    try {
      await api.put(`/v1/admin/users/${props.user.id}/expiry`, { expires_at });
      props.onSaved(expires_at ? `Expiry of ${props.user.username} set.` : `${props.user.username} never expires now.`);
      props.onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void save(localInputToIso(value));
  };
  return (
    <Dialog open={props.open} title={`Expiry of ${props.user.username}`} onClose={props.onClose}>
      <form onSubmit={submit}>
        <ErrorMessage error={error} />
        <Field label="Expires at (your local time)" hint="Must be in the future. A new date restores access to an expired account." error={fieldError(error, "expires_at")}>
          {(id, d) => <input id={id} aria-describedby={d} type="datetime-local" required value={value} onChange={(e) => setValue(e.target.value)} />}
        </Field>
        <div className="actions">
          <button type="button" onClick={() => void save(null)} disabled={busy}>
            Never expires
          </button>
          <button type="submit" className="primary" disabled={busy}>
            Set expiry
          </button>
        </div>
      </form>
    </Dialog>
  );
}
