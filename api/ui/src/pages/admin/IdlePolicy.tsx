import { type FormEvent, useState } from "react";
import { api } from "../../api";
import { ErrorMessage, Field, fieldError, Time } from "../../components";
import type { AdminHost, User } from "../../types";

/** An integer field's text: "" inherits (null); anything else must be a whole number. */
const parse = (v: string): number | null => (v.trim() === "" ? null : Number(v));

/**
 * A host's idle policy (docs/idle.md#policy), admin only: minutes idle before an automatic stop
 * and the CPU threshold (empty = the owner's, then the global default), and always-on.
 */
export function IdlePolicyCard({ host, onSaved }: { host: AdminHost; onSaved: () => void }) {
  const [minutes, setMinutes] = useState(host.idle_stop_minutes === null ? "" : String(host.idle_stop_minutes));
  const [cpu, setCpu] = useState(host.idle_cpu_percent === null ? "" : String(host.idle_cpu_percent));
  const [alwaysOn, setAlwaysOn] = useState(host.always_on);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      await api.patch(`/v1/admin/hosts/${host.id}`, { idle_stop_minutes: parse(minutes), idle_cpu_percent: parse(cpu), always_on: alwaysOn });
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card" aria-labelledby="idle-heading">
      <h2 id="idle-heading">Idle policy</h2>
      <form onSubmit={(e) => void submit(e)}>
        <Field label="Stop after (minutes idle)" hint="Empty: the owner's setting, then the global default. 0: never." error={fieldError(error, "idle_stop_minutes")}>
          {(id, d) => <input id={id} aria-describedby={d} inputMode="numeric" value={minutes} onChange={(e) => setMinutes(e.target.value)} />}
        </Field>
        <Field label="CPU threshold (%)" hint="Idle only while CPU stays under this share of the host's limit." error={fieldError(error, "idle_cpu_percent")}>
          {(id, d) => <input id={id} aria-describedby={d} inputMode="numeric" value={cpu} onChange={(e) => setCpu(e.target.value)} />}
        </Field>
        <label className="checkbox">
          <input type="checkbox" checked={alwaysOn} onChange={(e) => setAlwaysOn(e.target.checked)} /> Always on (never stopped for idleness)
        </label>
        <ErrorMessage error={error} />
        <button type="submit" disabled={busy}>
          Save
        </button>
        {saved ? <span className="muted"> Saved.</span> : null}
      </form>
      <dl className="props">
        <dt>Last active</dt>
        <dd>
          <Time value={host.last_active_at} />
        </dd>
        <dt>Stopped while idle</dt>
        <dd>{host.idle_stopped_at ? <Time value={host.idle_stopped_at} /> : "no"}</dd>
      </dl>
    </section>
  );
}

/** A user's idle policy (docs/idle.md#policy): the default of their hosts (empty = the global default). */
export function UserIdlePolicyCard({ user, onSaved }: { user: User; onSaved: () => void }) {
  const [minutes, setMinutes] = useState(user.idle_stop_minutes === null ? "" : String(user.idle_stop_minutes));
  const [cpu, setCpu] = useState(user.idle_cpu_percent === null ? "" : String(user.idle_cpu_percent));
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.patch(`/v1/admin/users/${user.id}`, { idle_stop_minutes: parse(minutes), idle_cpu_percent: parse(cpu) });
      onSaved();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card" aria-labelledby="user-idle-heading">
      <h2 id="user-idle-heading">Idle policy</h2>
      <form onSubmit={(e) => void submit(e)}>
        <Field label="Stop hosts after (minutes idle)" hint="Empty: the global default. 0: never. A host's own setting wins." error={fieldError(error, "idle_stop_minutes")}>
          {(id, d) => <input id={id} aria-describedby={d} inputMode="numeric" value={minutes} onChange={(e) => setMinutes(e.target.value)} />}
        </Field>
        <Field label="CPU threshold (%)" error={fieldError(error, "idle_cpu_percent")}>
          {(id, d) => <input id={id} aria-describedby={d} inputMode="numeric" value={cpu} onChange={(e) => setCpu(e.target.value)} />}
        </Field>
        <ErrorMessage error={error} />
        <button type="submit" disabled={busy}>
          Save
        </button>
      </form>
    </section>
  );
}
