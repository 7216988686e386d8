import { type ReactNode, useEffect, useState } from "react";
import { api, getSession, logout, onSessionChange, type Session } from "./api";
import { LiveProvider, useLiveStatus } from "./live";
import { Link, match, navigate, useLocation } from "./router";
import { LoginPage } from "./pages/Login";
import { DashboardPage } from "./pages/admin/Dashboard";
import { UsersPage } from "./pages/admin/Users";
import { UserDetailPage } from "./pages/admin/UserDetail";
import { HostsPage } from "./pages/admin/Hosts";
import { HostDetailPage } from "./pages/HostDetail";
import { EgressPage } from "./pages/admin/Egress";
import { EnginesPage } from "./pages/admin/Engines";
import { TasksPage, TaskDetailPage } from "./pages/admin/Tasks";
import { EventsPage } from "./pages/admin/Events";
import { SessionDetailPage, SessionsPage } from "./pages/Sessions";
import { WebhooksPage } from "./pages/admin/Webhooks";
import { MyHostsPage } from "./pages/portal/MyHosts";
import { MyKeysPage } from "./pages/portal/MyKeys";
import { ChangePasswordPage } from "./pages/portal/ChangePassword";

const home = (s: Session) => (s.role === "admin" ? "/admin" : "/portal");

export function App() {
  const [session, setSession] = useState<Session | null>(getSession());
  const [reason, setReason] = useState<string | undefined>(undefined);
  useEffect(
    () =>
      onSessionChange((s, r) => {
        setSession(s);
        if (!s) setReason(r);
      }),
    [],
  );
  // The token ends when it expires; do not wait for a 401 to say so.
  useEffect(() => {
    if (!session) return;
    const t = window.setTimeout(() => logout("Your session expired. Please log in again."), Math.max(0, session.expiresAt - Date.now()));
    return () => window.clearTimeout(t);
  }, [session]);

  if (!session) return <LoginPage reason={reason} onLoggedIn={() => setReason(undefined)} />;
  return (
    <LiveProvider session={session}>
      <Layout session={session}>
        <Routes session={session} />
      </Layout>
    </LiveProvider>
  );
}

function Routes({ session }: { session: Session }) {
  const { path } = useLocation();
  const admin = session.role === "admin";
  // Each role has its area; anything else goes home.
  const misplaced = path === "/" || path === "/login" || (admin ? !path.startsWith("/admin") : !path.startsWith("/portal"));
  useEffect(() => {
    if (misplaced) navigate(home(session), { replace: true });
  }, [misplaced, session]);
  if (misplaced) return null;

  let m: Record<string, string> | null;
  if (admin) {
    if (match("/admin", path)) return <DashboardPage />;
    if (match("/admin/users", path)) return <UsersPage />;
    if ((m = match("/admin/users/:id", path))) return <UserDetailPage key={m.id} id={m.id!} />;
    if (match("/admin/hosts", path)) return <HostsPage />;
    if ((m = match("/admin/hosts/:id", path))) return <HostDetailPage key={m.id} id={m.id!} portal="admin" />;
    if (match("/admin/egress", path)) return <EgressPage />;
    if (match("/admin/engines", path)) return <EnginesPage />;
    if (match("/admin/tasks", path)) return <TasksPage />;
    if ((m = match("/admin/tasks/:id", path))) return <TaskDetailPage key={m.id} id={m.id!} />;
    if (match("/admin/events", path)) return <EventsPage />;
    if (match("/admin/sessions", path)) return <SessionsPage key="admin" portal="admin" />;
    if ((m = match("/admin/sessions/:id", path))) return <SessionDetailPage key={m.id} id={m.id!} portal="admin" />;
    if (match("/admin/webhooks", path)) return <WebhooksPage />;
  } else {
    if (match("/portal", path)) return <MyHostsPage />;
    if ((m = match("/portal/hosts/:id", path))) return <HostDetailPage key={m.id} id={m.id!} portal="user" />;
    if (match("/portal/keys", path)) return <MyKeysPage />;
    if (match("/portal/sessions", path)) return <SessionsPage key="user" portal="user" />;
    if ((m = match("/portal/sessions/:id", path))) return <SessionDetailPage key={m.id} id={m.id!} portal="user" />;
    if (match("/portal/password", path)) return <ChangePasswordPage />;
  }
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is nothing at <code>{path}</code>. <Link to={home(session)}>Go to the start page</Link>.
      </p>
    </section>
  );
}

const ADMIN_NAV: [string, string][] = [
  ["/admin", "Dashboard"],
  ["/admin/users", "Users"],
  ["/admin/hosts", "Hosts"],
  ["/admin/egress", "Egress IPs"],
  ["/admin/engines", "Engines"],
  ["/admin/tasks", "Tasks"],
  ["/admin/events", "Events"],
  ["/admin/sessions", "Sessions"],
  ["/admin/webhooks", "Webhooks"],
];
const USER_NAV: [string, string][] = [
  ["/portal", "My host"],
  ["/portal/keys", "SSH keys"],
  ["/portal/sessions", "Sessions"],
  ["/portal/password", "Password"],
];

function Layout({ session, children }: { session: Session; children: ReactNode }) {
  const { path } = useLocation();
  const nav = session.role === "admin" ? ADMIN_NAV : USER_NAV;
  const [menuOpen, setMenuOpen] = useState(false);
  // After a navigation, move focus to the new page's heading so that keyboard and screen-reader
  // users start reading there (a SPA does not reset focus by itself).
  useEffect(() => {
    setMenuOpen(false);
    const t = window.setTimeout(() => {
      const h = document.querySelector<HTMLElement>("main h1");
      if (h && !h.contains(document.activeElement)) {
        h.tabIndex = -1;
        h.focus({ preventScroll: false });
      }
    }, 0);
    return () => window.clearTimeout(t);
  }, [path]);
  const current = (to: string) => (to === "/admin" || to === "/portal" ? path === to || (to === "/portal" && path.startsWith("/portal/hosts")) : path === to || path.startsWith(`${to}/`));

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          <Link to={home(session)}>cloud-cli-proxy</Link>
          <span className="role-tag">{session.role === "admin" ? "admin" : "portal"}</span>
        </div>
        <button
          type="button"
          className="menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="main-nav"
          onClick={() => setMenuOpen((o) => !o)}
        >
          Menu
        </button>
        <nav id="main-nav" aria-label="Main" className={menuOpen ? "nav open" : "nav"}>
          <ul>
            {nav.map(([to, label]) => (
              <li key={to}>
                <Link to={to} aria-current={current(to) ? "page" : undefined}>
                  {label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="session">
          <LiveIndicator />
          <span className="who" title={`Signed in as ${session.username}`}>
            {session.username}
          </span>
          <button type="button" className="small" onClick={() => logout("You have logged out.")}>
            Log out
          </button>
          <button
            type="button"
            className="small"
            title="End every session of this account: other browsers, scripts using your token and open desktops"
            onClick={() => void logoutEverywhere()}
          >
            Log out everywhere
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}

function LiveIndicator() {
  const status = useLiveStatus();
  const text = status === "live" ? "Live" : status === "polling" ? "Polling" : "Connecting";
  const title =
    status === "live"
      ? "Live updates are on"
      : status === "polling"
        ? "The live stream is unavailable: refreshing every few seconds"
        : "Connecting to live updates";
  return (
    <span className={`live live-${status}`} role="status" title={title} data-live={status}>
      <span className="dot" aria-hidden="true" />
      {text}
    </span>
  );
}

/** "Log out everywhere" (POST /v1/auth/logout-all): every token and desktop session of the account ends. */
async function logoutEverywhere(): Promise<void> {
  if (!window.confirm("End every session of this account, including open desktops and other browsers?")) return;
  try {
    await api.post("/v1/auth/logout-all");
    logout("You have been logged out everywhere.");
  } catch {
    // A 401 already ended this session (api.ts); anything else leaves it as it was.
  }
}
