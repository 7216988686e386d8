import { usePageTitle } from "../../router";
import { SshKeys } from "../SshKeys";

export function MyKeysPage() {
  usePageTitle("SSH keys");
  return (
    <section>
      <h1>SSH keys</h1>
      <SshKeys base="/v1/user/ssh-keys" owner="your" heading="Your keys" />
    </section>
  );
}
