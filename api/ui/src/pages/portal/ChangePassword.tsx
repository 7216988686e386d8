import { type FormEvent, useState } from "react";
import { ApiError, api, replaceToken } from "../../api";
import { ErrorMessage, Field, fieldError, Notice } from "../../components";
import { usePageTitle } from "../../router";

export function ChangePasswordPage() {
  usePageTitle("Change password");
  const [oldPassword, setOld] = useState("");
  const [newPassword, setNew] = useState("");
  const [confirm, setConfirm] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const mismatch = confirm !== "" && confirm !== newPassword;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (mismatch) return;
    setBusy(true);
    setError(undefined);
    setDone(false);
    try {
      const r = await api.post<{ status: string; token: string; expires_in: number }>("/v1/user/change-password", {
        old_password: oldPassword,
        new_password: newPassword,
      });
      // The change revoked every token, this one included; the answer carries a fresh one.
      replaceToken(r.body.token, r.body.expires_in);
      setOld("");
      setNew("");
      setConfirm("");
      setDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const message =
    error instanceof ApiError && error.code === "invalid_credentials"
      ? new Error("The current password is wrong.")
      : error instanceof ApiError && error.code === "rate_limited"
        ? new Error(`Too many failed attempts. Try again in ${error.retryAfter ?? "a few"} seconds.`)
        : error;

  return (
    <section>
      <h1>Change password</h1>
      <form className="card narrow" onSubmit={submit}>
        {done ? <Notice kind="success">Your password was changed. Other sessions were signed out.</Notice> : null}
        <ErrorMessage error={message} />
        <Field label="Current password" error={fieldError(error, "old_password")}>
          {(id, d) => <input id={id} aria-describedby={d} type="password" autoComplete="current-password" required value={oldPassword} onChange={(e) => setOld(e.target.value)} />}
        </Field>
        <Field label="New password" hint="8–128 characters." error={fieldError(error, "new_password")}>
          {(id, d) => (
            <input id={id} aria-describedby={d} type="password" autoComplete="new-password" required minLength={8} maxLength={128} value={newPassword} onChange={(e) => setNew(e.target.value)} />
          )}
        </Field>
        <Field label="Repeat the new password" error={mismatch ? "The two new passwords differ." : undefined}>
          {(id, d) => <input id={id} aria-describedby={d} type="password" autoComplete="new-password" required value={confirm} onChange={(e) => setConfirm(e.target.value)} />}
        </Field>
        <div className="actions">
          <button type="submit" className="primary" disabled={busy || mismatch}>
            {busy ? "Changing…" : "Change password"}
          </button>
        </div>
      </form>
    </section>
  );
}
