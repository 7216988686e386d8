import { type ReactNode, useCallback, useEffect, useId, useRef, useState } from "react";
import { ApiError, describeError } from "./api";
import type { TaskStep } from "./types";

// ---------------------------------------------------------------------------------------------
// Data loading

export interface Resource<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  setData: (fn: (prev: T | undefined) => T | undefined) => void;
}

/**
 * Load data for a view; `reload` re-runs the loader (live updates call it). Answers of older
 * requests are dropped, so a slow response never overwrites a newer one.
 */
export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Resource<T> {
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const loader = useRef(load);
  loader.current = load;
  const ctrl = useRef<AbortController | null>(null);

  const run = useCallback(() => {
    const mine = ++seq.current;
    ctrl.current?.abort();
    const c = new AbortController();
    ctrl.current = c;
    setLoading(true);
    loader
      .current(c.signal)
      .then((d) => {
        if (mine !== seq.current) return;
        setDataState(d);
        setError(undefined);
      })
      .catch((e: unknown) => {
        if (mine !== seq.current || (e as Error)?.name === "AbortError") return;
        setError(e);
      })
      .finally(() => {
        if (mine === seq.current) setLoading(false);
      });
  }, []);

  useEffect(() => {
    run();
    return () => ctrl.current?.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);

  return { data, error, loading, reload: run, setData: (fn) => setDataState((prev) => fn(prev)) };
}

// ---------------------------------------------------------------------------------------------
// Formatting

const dateFmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export function Time({ value }: { value: string | null | undefined }) {
  if (!value) return <span className="muted">—</span>;
  const d = new Date(value);
  return (
    <time dateTime={value} title={value}>
      {dateFmt.format(d)}
    </time>
  );
}

/** `<input type="datetime-local">` value ↔ RFC 3339 (UTC). */
export const localInputToIso = (v: string): string | null => (v ? new Date(v).toISOString() : null);
export const isoToLocalInput = (iso: string | null | undefined): string => {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

// ---------------------------------------------------------------------------------------------
// Messages

export function ErrorMessage({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const code = error instanceof ApiError ? error.code : undefined;
  return (
    <div className="alert alert-error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {describeError(error)}
      {code && code !== "network_error" ? <span className="muted"> ({code})</span> : null}
    </div>
  );
}

export function Notice({ children, kind = "info" }: { children: ReactNode; kind?: "info" | "success" | "warn" }) {
  return (
    <div className={`alert alert-${kind}`} role="status">
      {children}
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p className="muted" role="status" aria-live="polite">
      {what}…
    </p>
  );
}

const STATUS_CLASS: Record<string, string> = {
  running: "ok",
  active: "ok",
  succeeded: "ok",
  passed: "ok",
  passing: "ok",
  pass: "ok",
  available: "ok",
  pending: "wait",
  creating: "wait",
  starting: "wait",
  stopping: "wait",
  rebuilding: "wait",
  deleting: "wait",
  unknown: "neutral",
  stopped: "neutral",
  canceled: "neutral",
  skipped: "neutral",
  info: "neutral",
  failed: "bad",
  failing: "bad",
  fail: "bad",
  disabled: "bad",
  expired: "bad",
  error: "bad",
  warn: "warn",
  outdated: "warn",
  unreachable: "warn",
};

export function Badge({ value, label }: { value: string; label?: string }) {
  return (
    <span className={`badge badge-${STATUS_CLASS[value] ?? "neutral"}`} data-status={value}>
      {label ? <span className="visually-hidden">{label}: </span> : null}
      {value}
    </span>
  );
}

// ---------------------------------------------------------------------------------------------
// Dialogs

/**
 * A modal dialog on the native <dialog> element: showModal() makes the rest of the page inert,
 * keeps focus inside and closes on Escape; focus returns to the element that opened it.
 */
export function Dialog(props: { open: boolean; title: string; onClose: () => void; children: ReactNode; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const opener = useRef<HTMLElement | null>(null);
  const titleId = useId();
  const { open, onClose } = props;

  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      opener.current = document.activeElement as HTMLElement | null;
      d.showModal();
      const first = d.querySelector<HTMLElement>("[data-autofocus], input:not([type=hidden]):not([readonly]), select, textarea:not([readonly]), button.primary");
      (first ?? d.querySelector<HTMLElement>("button"))?.focus();
    } else if (!open && d.open) {
      d.close();
    }
  }, [open]);

  useEffect(() => {
    if (!open && opener.current) {
      const o = opener.current;
      opener.current = null;
      if (o.isConnected) o.focus();
    }
  }, [open]);

  return (
    <dialog
      ref={ref}
      className={props.wide ? "dialog dialog-wide" : "dialog"}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      {open ? (
        <>
          <div className="dialog-header">
            <h2 id={titleId}>{props.title}</h2>
            <button type="button" className="icon-button" aria-label="Close dialog" onClick={onClose}>
              ×
            </button>
          </div>
          <div className="dialog-body">{props.children}</div>
        </>
      ) : null}
    </dialog>
  );
}

/** A button that asks for confirmation in a dialog before running `action`. */
export function ConfirmButton(props: {
  label: string;
  title: string;
  message: ReactNode;
  confirmLabel?: string;
  danger?: boolean;
  disabled?: boolean;
  className?: string;
  action: () => Promise<void>;
}) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  return (
    <>
      <button type="button" className={props.className ?? (props.danger ? "danger" : "")} disabled={props.disabled} onClick={() => setOpen(true)}>
        {props.label}
      </button>
      <Dialog open={open} title={props.title} onClose={() => !busy && setOpen(false)}>
        <div>{props.message}</div>
        <ErrorMessage error={error} />
        <div className="actions">
          <button type="button" onClick={() => setOpen(false)} disabled={busy}>
            Cancel
          </button>
          <button
            type="button"
            className={props.danger ? "danger" : "primary"}
            disabled={busy}
            data-autofocus
            onClick={async () => {
              setBusy(true);
              setError(undefined);
              try {
                await props.action();
                setOpen(false);
              } catch (e) {
                setError(e);
              } finally {
                setBusy(false);
              }
            }}
          >
            {busy ? "Working…" : (props.confirmLabel ?? props.label)}
          </button>
        </div>
      </Dialog>
    </>
  );
}

// ---------------------------------------------------------------------------------------------
// Copy, secrets shown once

async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the selection fallback
  }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.className = "offscreen";
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

export function CopyButton({ text, label = "Copy", what }: { text: string; label?: string; what?: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  useEffect(() => {
    if (state === "idle") return;
    const t = window.setTimeout(() => setState("idle"), 2000);
    return () => window.clearTimeout(t);
  }, [state]);
  return (
    <button
      type="button"
      className="small"
      aria-label={what ? `${label} ${what}` : label}
      onClick={async () => setState((await copyText(text)) ? "copied" : "failed")}
    >
      <span aria-live="polite">{state === "copied" ? "Copied" : state === "failed" ? "Select and copy" : label}</span>
    </button>
  );
}

/** A command or value with its copy button. */
export function CopyField({ label, value, multiline }: { label: string; value: string; multiline?: boolean }) {
  const id = useId();
  return (
    <div className="copy-field">
      <label htmlFor={id}>{label}</label>
      <div className="copy-row">
        {multiline ? (
          <textarea
            id={id}
            readOnly
            value={value}
            rows={Math.min(12, value.split("\n").length + 1)}
            spellCheck={false}
            wrap="off"
            className="mono"
            onFocus={(e) => e.currentTarget.select()}
          />
        ) : (
          <input id={id} readOnly value={value} spellCheck={false} className="mono" onFocus={(e) => e.currentTarget.select()} />
        )}
        <CopyButton text={value} what={label} />
      </div>
    </div>
  );
}

export function downloadText(filename: string, text: string, type = "text/plain"): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A secret the API reveals once (docs/api.md#secrets): shown with copy (and download), never stored. */
export function SecretOnce(props: { label: string; value: string; download?: { filename: string }; multiline?: boolean }) {
  return (
    <div className="secret-once">
      <Notice kind="warn">
        <strong>Shown once.</strong> Copy it now: it is not stored in readable form and cannot be shown again.
      </Notice>
      <CopyField label={props.label} value={props.value} multiline={props.multiline} />
      {props.download ? (
        <button type="button" className="small" onClick={() => downloadText(props.download!.filename, props.value, "application/octet-stream")}>
          Download {props.download.filename}
        </button>
      ) : null}
    </div>
  );
}

// ---------------------------------------------------------------------------------------------
// Forms

export function Field(props: { label: string; hint?: ReactNode; error?: string; children: (id: string, describedBy: string | undefined) => ReactNode }) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errId = `${id}-err`;
  const describedBy = [props.hint ? hintId : "", props.error ? errId : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className={props.error ? "field field-invalid" : "field"}>
      <label htmlFor={id}>{props.label}</label>
      {props.children(id, describedBy)}
      {props.hint ? (
        <div className="hint" id={hintId}>
          {props.hint}
        </div>
      ) : null}
      {props.error ? (
        <div className="field-error" id={errId}>
          {props.error}
        </div>
      ) : null}
    </div>
  );
}

/** Errors of one field from an ApiError's details (`proxy_config.server_port` → `server_port` with a prefix). */
export function fieldError(error: unknown, field: string): string | undefined {
  return error instanceof ApiError ? error.field(field) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Lists

export function Pagination(props: { total: number; limit: number; offset: number; onPage: (offset: number) => void; label: string }) {
  const { total, limit, offset } = props;
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(total, offset + limit);
  return (
    <nav className="pagination" aria-label={`${props.label} pages`}>
      <span aria-live="polite">
        {first}–{last} of {total}
      </span>
      <button type="button" className="small" disabled={offset === 0} onClick={() => props.onPage(Math.max(0, offset - limit))}>
        Previous
      </button>
      <button type="button" className="small" disabled={offset + limit >= total} onClick={() => props.onPage(offset + limit)}>
        Next
      </button>
    </nav>
  );
}

// ---------------------------------------------------------------------------------------------
// Tasks

export interface ProgressTask {
  id: string;
  kind: string;
  status: string;
  progress_percent: number;
  progress_message: string | null;
  error_code: string | null;
  error_message: string | null;
  steps?: TaskStep[];
}

export function StepList({ steps }: { steps: ProgressTask["steps"] }) {
  if (!steps || steps.length === 0) return null;
  return (
    <ol className="steps">
      {steps.map((s) => (
        <li key={s.name} className={`step step-${s.status}`}>
          <span className="step-name">{s.name}</span> <Badge value={s.status} />
          {s.duration_ms !== null ? <span className="muted"> {s.duration_ms} ms</span> : null}
        </li>
      ))}
    </ol>
  );
}

/** A task's live progress: bar, message, steps and error. */
export function TaskProgress({ task, title }: { task: ProgressTask; title?: string }) {
  const headingId = useId();
  return (
    <section className="task-progress card" aria-labelledby={headingId} data-task-id={task.id} data-task-status={task.status}>
      <h3 id={headingId}>
        {title ?? "Task"}: <span className="mono">{task.kind}</span> <Badge value={task.status} label="Task status" />
      </h3>
      <progress max={100} value={task.progress_percent} aria-label={`${task.kind} progress`} />
      <p aria-live="polite" className="progress-text">
        {task.progress_percent}%{task.progress_message ? ` — ${task.progress_message}` : ""}
      </p>
      <StepList steps={task.steps} />
      {task.error_code ? (
        <div className="alert alert-error" role="alert">
          {task.error_message ?? "The task failed."} <span className="muted">({task.error_code})</span>
        </div>
      ) : null}
    </section>
  );
}
