import type { AnyRoute } from "../http/route.js";
import { legacyLoginRoute, loginRoute } from "./auth/login.js";
import { healthzRoute, readyzRoute } from "./health/healthz.js";
import { adminHostRoutes } from "./hosts/admin.js";
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
import { listEventsRoute } from "./events/list.js";
import { cancelTaskRoute } from "./tasks/cancel.js";
import { getTaskRoute } from "./tasks/get.js";
import { listTasksRoute } from "./tasks/list.js";

/** Every HTTP route, registered in one place. */
export const allRoutes: AnyRoute[] = [
  healthzRoute,
  readyzRoute,
  loginRoute,
  legacyLoginRoute,
  createUserRoute,
  listUsersRoute,
  getUserRoute,
  updateUserStatusRoute,
  deleteUserRoute,
  rotateUserPasswordRoute,
  setUserExpiryRoute,
  ...adminKeyRoutes,
  ...adminHostRoutes,
  changePasswordRoute,
  ...portalHostRoutes,
  ...selfKeyRoutes,
  listTasksRoute,
  getTaskRoute,
  cancelTaskRoute,
  listEventsRoute,
  dashboardStatsRoute,
];
