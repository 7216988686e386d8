// cloud-cli-proxy host defaults for Firefox ESR (Debian reads every file in /etc/firefox-esr).
// No preloaded spare content processes: hosts share a machine with many others.
pref("dom.ipc.processPrelaunch.enabled", false);
pref("browser.aboutwelcome.enabled", false);
pref("datareporting.policy.dataSubmissionEnabled", false);
pref("network.connectivity-service.enabled", false);
