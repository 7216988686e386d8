import { type FormEvent, useState } from "react";
import { ApiError, login } from "../api";
import { Field, Notice } from "../components";
import { usePageTitle } from "../router";

function loginError(err: unknown): string {
  if (err instanceof ApiError) {
    switch (err.code) {
      case "invalid_credentials":
        return "Wrong username or password.";
      case "account_disabled":
        return "This account is disabled. Ask your administrator.";
      case "account_expired":
        return "This account has expired. Ask your administrator.";
      case "rate_limited":
        return `Too many failed attempts. Try again in ${err.retryAfter ?? "a few"} seconds.`;
      case "invalid_request":
        return "Enter a username and a password.";
      default:
        return err.message;
    }
  }
  return "Login failed.";
}

/** One login for both roles (POST /v1/auth/login); the role decides where it lands. */
export function LoginPage({ reason, onLoggedIn }: { reason?: string; onLoggedIn: () => void }) {
  usePageTitle("Log in");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await login(username.trim(), password);
      onLoggedIn();
    } catch (err) {
      setError(loginError(err));
      setPassword("");
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" className="login-page">
      <form className="card login-card" onSubmit={submit} aria-describedby="login-note">
        <h1>cloud-cli-proxy</h1>
        <p className="muted">Log in to manage hosts (administrators) or to reach your own host.</p>
        {reason ? <Notice>{reason}</Notice> : null}
        {error ? (
          <div className="alert alert-error" role="alert">
            {error}
          </div>
        ) : null}
        <Field label="Username">
          {(id) => (
            <input
              id={id}
              name="username"
              autoComplete="username"
              autoCapitalize="none"
              spellCheck={false}
              required
              autoFocus
              value={username}
              onChange={(e) => setUsername(e.target.value)}
            />
          )}
        </Field>
        <Field label="Password">
          {(id) => (
            <input
              id={id}
              name="password"
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          )}
        </Field>
        <button type="submit" className="primary wide" disabled={busy}>
          {busy ? "Logging in…" : "Log in"}
        </button>
        <p id="login-note" className="hint">
          Your session is kept only in this tab's memory, never in browser storage: you will need to log in again after
          a reload or in a new tab.
        </p>
      </form>
    </main>
  );
}
