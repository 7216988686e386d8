"""Shared helpers of the test lab's programs (docs/egress.md#lab).

The lab's topology (names, addresses, ports) is defined once, in test/lab/lib.sh; up.sh writes it
as KEY=VALUE lines to $CCP_LAB_STATE/srv/topology.env, which every lab container sees read-only at
/etc/ccp-lab/topology.env. Nothing here hard-codes an address.
"""
import datetime
import os
import sys
import threading

CONF_DIR = os.environ.get("CCP_LAB_CONF", "/etc/ccp-lab")
LOG_DIR = "/var/log/ccp-lab"

_log_lock = threading.Lock()


def now() -> str:
    """UTC timestamp with milliseconds, e.g. 2026-05-01T10:00:04.210Z."""
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def read_env_file(path: str) -> dict:
    """KEY=VALUE lines (no quoting, no expansion); blank lines and # comments ignored."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def topology(conf_dir: str = CONF_DIR) -> dict:
    return read_env_file(os.path.join(conf_dir, "topology.env"))


class Logger:
    """One line per event, to stdout (docker logs) and, when given, appended to a file."""

    def __init__(self, file_name: str | None = None):
        self.fh = None
        if file_name:
            os.makedirs(LOG_DIR, exist_ok=True)
            self.fh = open(os.path.join(LOG_DIR, file_name), "a", buffering=1, encoding="utf-8")

    def __call__(self, msg: str) -> None:
        line = "%s %s\n" % (now(), msg)
        with _log_lock:
            sys.stdout.write(line)
            sys.stdout.flush()
            if self.fh:
                self.fh.write(line)


def normalize_name(name: str) -> str:
    return name.strip().rstrip(".").lower()
