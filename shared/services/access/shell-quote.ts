/**
 * One POSIX shell word for any string: wrapped in single quotes, with each `'` written as `'\''`
 * (close, escaped quote, reopen). Nothing is special inside single quotes, so `$`, backticks,
 * `\`, `"`, newlines and globs all reach the shell verbatim (docs/api.md#validation, docs/api.md#bootstrap).
 */
export function shellQuote(value: string): string {
  if (value.includes("\0")) throw new Error("a shell word cannot contain NUL");
  return `'${value.replace(/'/g, "'\\''")}'`;
}
