import { taskView } from "../../../shared/views/index.js";

/** The task object of docs/api.md#task-object (shared/views: the renderer is typed by it). */
export const taskDoc = taskView;
