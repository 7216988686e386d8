import { hash, verify } from "@node-rs/argon2";

/** argon2id with the OWASP-recommended minimum (19 MiB, t=2, p=1). */
// The library's default algorithm is argon2id (asserted in the tests).
const PARAMS = { memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return hash(password, PARAMS);
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

let dummyHash: Promise<string> | undefined;

/** Build the dummy hash ahead of the first login (the api calls this at start). */
export function warmDummyHash(): Promise<string> {
  dummyHash ??= hash("cloud-cli-proxy dummy password", PARAMS);
  return dummyHash;
}

/**
 * Verifies against a throwaway hash so that an unknown username costs the same time as a known
 * one: the answer must not reveal whether the account exists (docs/api.md#login).
 */
export async function verifyDummy(password: string): Promise<false> {
  await verifyPassword(await warmDummyHash(), password);
  return false;
}
