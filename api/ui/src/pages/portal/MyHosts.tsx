import { api } from "../../api";
import { Badge, ErrorMessage, Loading, useResource } from "../../components";
import { useLive, useLiveReload } from "../../live";
import { Link, usePageTitle } from "../../router";
import type { UserHost } from "../../types";
import { openDesktop } from "../HostDetail";

/** The caller's hosts (0 or 1, docs/api.md#hosts-portal). */
export function MyHostsPage() {
  usePageTitle("My host");
  const list = useResource((signal) => api.get<{ hosts: UserHost[]; total: number }>("/v1/user/hosts", signal), []);
  useLive((m) => {
    if (m.type === "host")
      list.setData((d) => (d ? { ...d, hosts: d.hosts.map((h) => (h.id === m.data.id ? { ...h, status: m.data.status } : h)) } : d));
  });
  useLiveReload(list.reload, (m) => m.type === "host_removed" || (m.type === "host" && !list.data?.hosts.some((h) => h.id === m.data.id)));

  return (
    <section>
      <h1>My host</h1>
      <ErrorMessage error={list.error} />
      {!list.data ? (
        <Loading />
      ) : list.data.hosts.length === 0 ? (
        <p>You have no host yet. Ask your administrator to create one.</p>
      ) : (
        <ul className="cards">
          {list.data.hosts.map((h) => (
            <li key={h.id} className="card host-card">
              <h2>
                <Link to={`/portal/hosts/${h.id}`}>
                  Host <span className="mono">{h.short_id}</span>
                </Link>{" "}
                <Badge value={h.status} label="Status" />
              </h2>
              <p className="small-text">
                {h.memory_limit_mb} MiB · {h.cpu_limit} CPU · {h.timezone}
                {h.egress ? ` · exit IP ${h.egress.ip_address}` : ""}
              </p>
              <div className="button-row">
                <Link to={`/portal/hosts/${h.id}`} className="button">
                  Access commands
                </Link>
                <button type="button" className="primary" disabled={h.status !== "running"} onClick={() => void openDesktop("user", h.id)}>
                  Open desktop
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
