import { type FormEvent, useState } from "react";
import { api } from "../api";
import { ConfirmButton, Dialog, ErrorMessage, Field, fieldError, Loading, Notice, SecretOnce, Time, useResource } from "../components";
import type { SshKey } from "../types";

/**
 * SSH login keys of one user: the admin's view of any user (`/v1/admin/users/{id}/ssh-keys`) or
 * the caller's own (`/v1/user/ssh-keys`). Same endpoints and answers either way (docs/api.md#ssh-keys).
 */
export function SshKeys({ base, owner, heading = "SSH keys" }: { base: string; owner: string; heading?: string }) {
  // A user has at most 50 keys: one page holds them all.
  const keys = useResource((signal) => api.get<{ keys: SshKey[]; total: number }>(`${base}?limit=50`, signal), [base]);
  const [adding, setAdding] = useState(false);
  const [generating, setGenerating] = useState(false);
  const [note, setNote] = useState<string | undefined>(undefined);

  return (
    <section className="card" aria-labelledby="ssh-keys-heading">
      <div className="section-head">
        <h2 id="ssh-keys-heading">{heading}</h2>
        <div className="button-row">
          <button type="button" onClick={() => setAdding(true)}>
            Add public key
          </button>
          <button type="button" onClick={() => setGenerating(true)}>
            Generate key pair
          </button>
        </div>
      </div>
      <p className="hint">Keys log in to {owner} host through the SSH proxy; changes reach a running host within seconds.</p>
      {note ? <Notice kind="success">{note}</Notice> : null}
      <ErrorMessage error={keys.error} />
      {!keys.data ? (
        <Loading what="Loading keys" />
      ) : keys.data.keys.length === 0 ? (
        <p className="muted">No SSH keys yet.</p>
      ) : (
        <ul className="key-list">
          {keys.data.keys.map((k) => (
            <li key={k.id} className="key">
              <div>
                <strong>{k.label || <span className="muted">(no label)</span>}</strong> <span className="badge badge-neutral">{k.key_type}</span>
                <div className="mono small-text break">{k.fingerprint}</div>
                <div className="muted small-text">
                  added <Time value={k.created_at} />
                </div>
              </div>
              <ConfirmButton
                label="Delete"
                title="Delete SSH key"
                danger
                className="danger small"
                message={
                  <p>
                    Delete the key <strong>{k.label || k.fingerprint}</strong>? New SSH connections with it will be refused at once.
                  </p>
                }
                action={async () => {
                  await api.del(`${base}/${k.id}`);
                  setNote(`Key ${k.label || k.fingerprint} deleted.`);
                  keys.reload();
                }}
              />
            </li>
          ))}
        </ul>
      )}
      <AddKeyDialog
        open={adding}
        base={base}
        onClose={() => setAdding(false)}
        onAdded={(k) => {
          setNote(`Key ${k.label || k.fingerprint} added.`);
          keys.reload();
        }}
      />
      <GenerateKeyDialog open={generating} base={base} onClose={() => setGenerating(false)} onGenerated={keys.reload} />
    </section>
  );
}

function AddKeyDialog(props: { open: boolean; base: string; onClose: () => void; onAdded: (k: SshKey) => void }) {
  const [publicKey, setPublicKey] = useState("");
  const [label, setLabel] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const close = () => {
    setPublicKey("");
    setLabel("");
    setError(undefined);
    props.onClose();
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body: Record<string, string> = { public_key: publicKey.trim() };
      if (label) body.label = label;
      const res = await api.post<{ key: SshKey }>(props.base, body);
      props.onAdded(res.body.key);
      close();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={props.open} title="Add SSH public key" onClose={close}>
      <form onSubmit={submit}>
        <ErrorMessage error={error} />
        <Field label="Public key" hint="One line in authorized_keys format, e.g. ssh-ed25519 AAAA… you@laptop" error={fieldError(error, "public_key")}>
          {(id, d) => (
            <textarea id={id} aria-describedby={d} required rows={4} spellCheck={false} className="mono" value={publicKey} onChange={(e) => setPublicKey(e.target.value)} />
          )}
        </Field>
        <Field label="Label (optional)" hint="Defaults to the key's comment." error={fieldError(error, "label")}>
          {(id, d) => <input id={id} aria-describedby={d} maxLength={100} value={label} onChange={(e) => setLabel(e.target.value)} />}
        </Field>
        <div className="actions">
          <button type="button" onClick={close}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? "Adding…" : "Add key"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function GenerateKeyDialog(props: { open: boolean; base: string; onClose: () => void; onGenerated: () => void }) {
  const [label, setLabel] = useState("");
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ key: SshKey; private_key: string } | null>(null);
  const close = () => {
    setLabel("");
    setError(undefined);
    setResult(null);
    props.onClose();
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const res = await api.post<{ key: SshKey; private_key: string }>(`${props.base}/generate`, label ? { label } : {});
      setResult(res.body);
      props.onGenerated();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={props.open} title={result ? "Key pair generated" : "Generate SSH key pair"} onClose={close} wide>
      {result ? (
        <div>
          <p>
            An ed25519 key pair was generated; its public half (<span className="mono">{result.key.fingerprint}</span>) is registered.
          </p>
          <SecretOnce label="Private key" value={result.private_key} multiline download={{ filename: "id_ed25519" }} />
          <p className="hint">
            Save it as <code>~/.ssh/id_ed25519</code> with mode 0600 (<code>chmod 600 ~/.ssh/id_ed25519</code>).
          </p>
          <div className="actions">
            <button type="button" className="primary" onClick={close}>
              I have saved it
            </button>
          </div>
        </div>
      ) : (
        <form onSubmit={submit}>
          <ErrorMessage error={error} />
          <p>The server generates an ed25519 key pair, keeps the public key and shows you the private key once.</p>
          <Field label="Label (optional)" hint='Defaults to "generated".' error={fieldError(error, "label")}>
            {(id, d) => <input id={id} aria-describedby={d} maxLength={100} value={label} onChange={(e) => setLabel(e.target.value)} />}
          </Field>
          <div className="actions">
            <button type="button" onClick={close}>
              Cancel
            </button>
            <button type="submit" className="primary" disabled={busy}>
              {busy ? "Generating…" : "Generate"}
            </button>
          </div>
        </form>
      )}
    </Dialog>
  );
}
