import type { ServiceContext } from "../context.js";
import { loadAdminHosts } from "../hosts/render.js";
import { getLiveUser } from "./lookup.js";
import { renderUser } from "./render.js";

export async function getUser({ ctx, userId }: { ctx: ServiceContext; userId: string }) {
  const user = await getLiveUser(ctx.db, userId);
  const hosts = await loadAdminHosts(ctx.db, { userId: user.id });
  return { user: renderUser(user, ctx.clock()), hosts };
}
