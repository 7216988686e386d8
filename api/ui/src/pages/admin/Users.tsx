import { type FormEvent, useState } from "react";
import { api, qs } from "../../api";
import {
  Badge,
  Dialog,
  ErrorMessage,
  Field,
  fieldError,
  Loading,
  localInputToIso,
  Pagination,
  SecretOnce,
  Time,
  useResource,
} from "../../components";
import { Link, navigate, setQuery, useLocation, usePageTitle } from "../../router";
import type { User } from "../../types";

const PAGE = 25;

export function userState(u: User): string {
  return u.status === "disabled" ? "disabled" : u.expired ? "expired" : "active";
}

export function UsersPage() {
  usePageTitle("Users");
  const { query } = useLocation();
  const status = query.get("status") ?? "";
  const role = query.get("role") ?? "";
  const offset = Number(query.get("offset") ?? 0) || 0;
  const list = useResource(
    (signal) =>
      api.get<{ users: User[]; total: number; limit: number; offset: number }>(
        `/v1/admin/users${qs({ status, role, limit: PAGE, offset })}`,
        signal,
      ),
    [status, role, offset],
  );
  const [creating, setCreating] = useState(false);

  return (
    <section>
      <div className="page-head">
        <h1>Users</h1>
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          Create user
        </button>
      </div>
      <form className="filters" aria-label="Filter users" onSubmit={(e) => e.preventDefault()}>
        <Field label="Status">
          {(id) => (
            <select id={id} value={status} onChange={(e) => setQuery({ status: e.target.value, offset: undefined })}>
              <option value="">any</option>
              <option value="active">active</option>
              <option value="disabled">disabled</option>
              <option value="expired">expired</option>
            </select>
          )}
        </Field>
        <Field label="Role">
          {(id) => (
            <select id={id} value={role} onChange={(e) => setQuery({ role: e.target.value, offset: undefined })}>
              <option value="">any</option>
              <option value="user">user</option>
              <option value="admin">admin</option>
            </select>
          )}
        </Field>
      </form>
      <ErrorMessage error={list.error} />
      {!list.data ? (
        <Loading />
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Users</caption>
              <thead>
                <tr>
                  <th scope="col">Username</th>
                  <th scope="col">Role</th>
                  <th scope="col">State</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                {list.data.users.length === 0 ? (
                  <tr>
                    <td colSpan={5} className="muted">
                      No users match.
                    </td>
                  </tr>
                ) : (
                  list.data.users.map((u) => (
                    <tr key={u.id}>
                      <th scope="row">
                        <Link to={`/admin/users/${u.id}`}>{u.username}</Link>
                      </th>
                      <td>{u.role}</td>
                      <td>
                        <Badge value={userState(u)} />
                      </td>
                      <td>{u.expires_at ? <Time value={u.expires_at} /> : <span className="muted">never</span>}</td>
                      <td>
                        <Time value={u.created_at} />
                      </td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
          <Pagination label="Users" total={list.data.total} limit={list.data.limit} offset={list.data.offset} onPage={(o) => setQuery({ offset: o || undefined })} />
        </>
      )}
      <CreateUserDialog open={creating} onClose={() => setCreating(false)} onCreated={list.reload} />
    </section>
  );
}

function CreateUserDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: () => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [expires, setExpires] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<{ user: User; password?: string } | null>(null);

  const close = () => {
    setUsername("");
    setPassword("");
    setExpires("");
    setError(undefined);
    setCreated(null);
    onClose();
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body: Record<string, unknown> = { username };
      if (password) body.password = password;
      if (expires) body.expires_at = localInputToIso(expires);
      const res = await api.post<{ user: User; password?: string }>("/v1/admin/users", body);
      setCreated(res.body);
      onCreated();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog open={open} title={created ? "User created" : "Create user"} onClose={close}>
      {created ? (
        <div>
          <p>
            User <strong>{created.user.username}</strong> was created.
          </p>
          {created.password ? <SecretOnce label="Generated password" value={created.password} /> : <p>The password you entered is set.</p>}
          <div className="actions">
            <button type="button" onClick={close}>
              Close
            </button>
            <button
              type="button"
              className="primary"
              onClick={() => {
                const id = created.user.id;
                close();
                navigate(`/admin/users/${id}`);
              }}
            >
              Open user
            </button>
          </div>
        </div>
      ) : (
        <form onSubmit={submit}>
          <ErrorMessage error={error} />
          <Field label="Username" hint="3–50 characters: a–z, 0–9, '.', '_' or '-'." error={fieldError(error, "username")}>
            {(id, d) => (
              <input
                id={id}
                aria-describedby={d}
                required
                autoComplete="off"
                autoCapitalize="none"
                spellCheck={false}
                value={username}
                onChange={(e) => setUsername(e.target.value)}
              />
            )}
          </Field>
          <Field label="Password (optional)" hint="Leave empty to generate a 20-character password, shown once." error={fieldError(error, "password")}>
            {(id, d) => <input id={id} aria-describedby={d} type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />}
          </Field>
          <Field label="Expires (optional, your local time)" hint="Empty: never expires." error={fieldError(error, "expires_at")}>
            {(id, d) => <input id={id} aria-describedby={d} type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />}
          </Field>
          <div className="actions">
            <button type="button" onClick={close}>
              Cancel
            </button>
            <button type="submit" className="primary" disabled={busy}>
              {busy ? "Creating…" : "Create user"}
            </button>
          </div>
        </form>
      )}
    </Dialog>
  );
}
