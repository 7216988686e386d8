import type { AnyRoute } from "../http/route.js";
import { legacyLoginRoute, loginRoute } from "./auth/login.js";
import { logoutAllRoute } from "./auth/logout-all.js";
import { desktopSessionRoutes } from "./desktop/session.js";
import { createBootstrapSessionRoute } from "./bootstrap/create-session.js";
import { getBootstrapTaskRoute } from "./bootstrap/get-task.js";
import { bootstrapHandoffRoute } from "./bootstrap/handoff.js";
import { bootstrapScriptRoute } from "./bootstrap/script.js";
import { entryAuthRoute } from "./entry/auth.js";
import { entryScriptRoute } from "./entry/script.js";
import { healthzRoute, readyzRoute } from "./health/healthz.js";
import { metricsRoute } from "./metrics/get.js";
import { adminHostRoutes } from "./hosts/admin.js";
import { updateHostRoute } from "./hosts/update.js";
import { createBindingRoute } from "./bindings/create.js";
import { deleteBindingRoute } from "./bindings/delete.js";
import { createEgressRoute } from "./egress/create.js";
import { deleteEgressRoute } from "./egress/delete.js";
import { getEgressRoute } from "./egress/get.js";
import { listEgressRoute } from "./egress/list.js";
import { testEgressRoute } from "./egress/test.js";
import { updateEgressRoute } from "./egress/update.js";
import { addEngineRoute } from "./engines/add.js";
import { getEngineRoute } from "./engines/get.js";
import { listEnginesRoute } from "./engines/list.js";
import { removeEngineRoute } from "./engines/remove.js";
import { cordonEngineRoute, drainEngineRoute, uncordonEngineRoute } from "./engines/state.js";
import { updateEngineRoute } from "./engines/update.js";
import { portalHostRoutes } from "./portal/hosts.js";
import { changePasswordRoute } from "./portal/change-password.js";
import { adminKeyRoutes, selfKeyRoutes } from "./ssh-keys/routes.js";
import { createUserRoute } from "./users/create.js";
import { deleteUserRoute } from "./users/delete.js";
import { getUserRoute } from "./users/get.js";
import { listUsersRoute } from "./users/list.js";
import { rotateUserPasswordRoute } from "./users/rotate-password.js";
import { setUserExpiryRoute } from "./users/set-expiry.js";
import { updateUserStatusRoute } from "./users/update-status.js";
import { dashboardStatsRoute } from "./dashboard/stats.js";
import { dashboardChartsRoute } from "./dashboard/charts.js";
import { listEventsRoute } from "./events/list.js";
import { exportEventsRoute } from "./events/export.js";
import { exportSessionsRoute } from "./sessions/export.js";
import { webhookRoutes } from "./webhooks/routes.js";
import { listAttestationsRoute } from "./attestations/list.js";
import { cancelTaskRoute } from "./tasks/cancel.js";
import { getTaskRoute } from "./tasks/get.js";
import { listTasksRoute } from "./tasks/list.js";
import { liveRoutes } from "./live/sse.js";
import { getOwnSessionRoute, getSessionRoute } from "./sessions/get.js";
import { listOwnSessionsRoute, listSessionsRoute } from "./sessions/list.js";
import { setHostRecordingRoute, setUserRecordingRoute } from "./sessions/policy.js";
import { getOwnRecordingRoute, getRecordingRoute } from "./sessions/recording.js";

/** Every HTTP route, registered in one place. */
export const allRoutes: AnyRoute[] = [
  healthzRoute,
  readyzRoute,
  metricsRoute,
  loginRoute,
  legacyLoginRoute,
  logoutAllRoute,
  createUserRoute,
  listUsersRoute,
  getUserRoute,
  updateUserStatusRoute,
  deleteUserRoute,
  rotateUserPasswordRoute,
  setUserExpiryRoute,
  ...adminKeyRoutes,
  ...adminHostRoutes,
  updateHostRoute,
  createEgressRoute,
  listEgressRoute,
  getEgressRoute,
  updateEgressRoute,
  deleteEgressRoute,
  testEgressRoute,
  createBindingRoute,
  deleteBindingRoute,
  listEnginesRoute,
  addEngineRoute,
  getEngineRoute,
  updateEngineRoute,
  cordonEngineRoute,
  uncordonEngineRoute,
  drainEngineRoute,
  removeEngineRoute,
  changePasswordRoute,
  ...portalHostRoutes,
  // Before the VNC proxy's catch-all on the same prefix (api/app.ts registers that after these).
  ...desktopSessionRoutes,
  ...selfKeyRoutes,
  listTasksRoute,
  getTaskRoute,
  cancelTaskRoute,
  listEventsRoute,
  exportEventsRoute,
  // Before /v1/admin/sessions/{sessionID}, which the export's path also matches.
  exportSessionsRoute,
  ...webhookRoutes,
  listAttestationsRoute,
  dashboardStatsRoute,
  dashboardChartsRoute,
  listSessionsRoute,
  getSessionRoute,
  getRecordingRoute,
  listOwnSessionsRoute,
  getOwnSessionRoute,
  getOwnRecordingRoute,
  setUserRecordingRoute,
  setHostRecordingRoute,
  ...liveRoutes,
  bootstrapScriptRoute,
  createBootstrapSessionRoute,
  getBootstrapTaskRoute,
  bootstrapHandoffRoute,
  entryScriptRoute,
  entryAuthRoute,
];

/** The ENTRY_LISTEN_ADDR listener serves this route and nothing else (docs/architecture.md#processes). */
export const entryListenerRoutes: AnyRoute[] = [entryScriptRoute];
