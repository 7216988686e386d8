import { z } from "zod";
import { taskStatuses } from "../../db/schema/index.js";
import { JOB_CONTRACTS, type JobName } from "../../queue/contracts.js";
import { paginationShape, uuidField } from "../../validation.js";

/** Every task kind of docs/api.md#task-object: the job names of the queue contracts. */
export const taskKinds = Object.keys(JOB_CONTRACTS) as [JobName, ...JobName[]];

export const listTasksQuery = z.object({
  ...paginationShape,
  status: z.enum(taskStatuses).optional(),
  kind: z.enum(taskKinds).optional(),
  host_id: uuidField.optional(),
});
export type ListTasksQuery = z.output<typeof listTasksQuery>;

/** The cancel endpoint takes no body; an empty one means `{}` and any field is unknown. */
export const cancelTaskInput = z.strictObject({});
