/** The managed block of `~/.ssh/authorized_keys` (docs/architecture.md#host-flows). Pure, unit-tested. */
export const BEGIN_MARKER = "# >>> cloud-cli-proxy managed keys >>>";
export const END_MARKER = "# <<< cloud-cli-proxy managed keys <<<";

export interface ManagedKey {
  id: string;
  /** Normalised `<algorithm> <base64>[ <comment>]`; the comment is not copied. */
  publicKey: string;
}

/**
 * Replace the managed block with one line per key (`<algorithm> <base64> ccp:<key id>`),
 * preserving every line outside it; remove the block when there are no keys.
 */
export function renderAuthorizedKeys(existing: string, keys: ManagedKey[]): string {
  const lines = existing.split("\n");
  const outside: string[] = [];
  let inBlock = false;
  for (const line of lines) {
    if (line.trim() === BEGIN_MARKER) {
      inBlock = true;
      continue;
    }
    if (line.trim() === END_MARKER) {
      inBlock = false;
      continue;
    }
    if (!inBlock) outside.push(line);
  }
  while (outside.length && outside[outside.length - 1] === "") outside.pop();
  const block = keys.length
    ? [
        BEGIN_MARKER,
        ...keys.map((k) => {
          const [alg, b64] = k.publicKey.split(/\s+/);
          return `${alg} ${b64} ccp:${k.id}`;
        }),
        END_MARKER,
      ]
    : [];
  const all = [...outside, ...block];
  return all.length ? `${all.join("\n")}\n` : "";
}
