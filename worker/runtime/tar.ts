/**
 * A minimal POSIX ustar writer/reader for the engine's archive API (file uploads before start,
 * reading one file back). Data never passes through a shell.
 */
import type { FileSpec } from "./runtime.js";

function header(name: string, size: number, mode: number, uid: number, gid: number, type: "0" | "5"): Buffer {
  const h = Buffer.alloc(512, 0);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar: name too long: ${name}`);
  h.write(name, 0, 100, "utf8");
  h.write(mode.toString(8).padStart(7, "0") + "\0", 100, 8, "ascii");
  h.write(uid.toString(8).padStart(7, "0") + "\0", 108, 8, "ascii");
  h.write(gid.toString(8).padStart(7, "0") + "\0", 116, 8, "ascii");
  h.write(size.toString(8).padStart(11, "0") + "\0", 124, 12, "ascii");
  h.write(Math.floor(Date.now() / 1000).toString(8).padStart(11, "0") + "\0", 136, 12, "ascii");
  h.write("        ", 148, 8, "ascii");
  h.write(type, 156, 1, "ascii");
  h.write("ustar\0", 257, 6, "ascii");
  h.write("00", 263, 2, "ascii");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "ascii");
  return h;
}

export function buildTar(files: FileSpec[], dirs: { name: string; mode: number; uid?: number; gid?: number }[] = []): Buffer {
  const parts: Buffer[] = [];
  for (const d of dirs) parts.push(header(d.name.endsWith("/") ? d.name : `${d.name}/`, 0, d.mode, d.uid ?? 0, d.gid ?? 0, "5"));
  for (const f of files) {
    const data = Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content, "utf8");
    parts.push(header(f.name, data.length, f.mode, f.uid ?? 0, f.gid ?? 0, "0"));
    parts.push(data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad, 0));
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

/** The first regular file in a tar stream (what the engine returns for a single-file path). */
export function firstFileOfTar(tar: Buffer): Buffer | null {
  let off = 0;
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) return null;
    const size = parseInt(h.subarray(124, 136).toString("ascii").replace(/\0.*$/, "").trim() || "0", 8);
    const type = String.fromCharCode(h[156]!);
    const start = off + 512;
    if (type === "0" || type === "\0") return tar.subarray(start, start + size);
    off = start + Math.ceil(size / 512) * 512;
  }
  return null;
}
