import type { Context } from "hono";
import type { Logger } from "../../shared/logger.js";
import type { ExportPager } from "../../shared/services/export/keyset.js";

export const NDJSON = "application/x-ndjson";

/** The documented 200 of an export route (docs/api.md#export). */
export const ndjsonDoc = (description: string) => ({
  description,
  content: { [NDJSON]: { schema: { type: "string" as const, description: "One JSON object per line (\\n-terminated)" } } },
});

/**
 * An NDJSON answer (docs/api.md#export): one JSON object per line, read page by page from a keyset
 * pager. The first page is read before the answer starts, so a failure there is still a proper
 * error envelope. After that the stream is pull-based: the next page is read only when the client
 * has taken the previous one (highWaterMark 1, and the server waits for the socket to drain), so a
 * slow reader holds one page in memory, never the export; a client that goes away cancels the
 * stream and no further page is read. A failure mid-way ends the connection without the
 * remaining lines (the status line has been sent): every complete line ends with `\n`, so a
 * client tells a cut export from a finished one only by the connection error.
 */
export async function ndjsonResponse<T>(c: Context, pager: ExportPager<T>, opts: { filename: string; log: Logger }): Promise<Response> {
  const encoder = new TextEncoder();
  const encode = (items: T[]) => encoder.encode(items.map((i) => `${JSON.stringify(i)}\n`).join(""));
  let page = await pager(null);
  let canceled = false;
  let lines = page.items.length;
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        if (page.items.length) controller.enqueue(encode(page.items));
        if (!page.next) controller.close();
      },
      async pull(controller) {
        if (canceled || !page.next) return;
        try {
          page = await pager(page.next);
        } catch (err) {
          opts.log.error({ err, lines }, "export failed mid-stream");
          controller.error(err);
          return;
        }
        if (canceled) return;
        lines += page.items.length;
        if (page.items.length) controller.enqueue(encode(page.items));
        if (!page.next) controller.close();
      },
      cancel() {
        canceled = true;
        opts.log.info({ lines }, "export canceled by the client");
      },
    },
    { highWaterMark: 1 },
  );
  const requestId = c.get("requestId" as never) as string | undefined;
  return new Response(stream, {
    status: 200,
    headers: {
      "content-type": `${NDJSON}; charset=utf-8`,
      "content-disposition": `attachment; filename="${opts.filename}"`,
      ...(requestId ? { "x-request-id": requestId } : {}),
    },
  });
}
