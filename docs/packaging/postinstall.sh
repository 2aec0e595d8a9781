#!/bin/sh
# After installing the deb/rpm: the account the Ripcord server runs as, and
# its group, whose members may connect to the server's socket.
set -e
if ! getent group ripcord >/dev/null; then
  groupadd --system ripcord
fi
if ! getent passwd ripcord >/dev/null; then
  useradd --system --gid ripcord --home-dir /var/lib/ripcord --no-create-home \
    --shell /usr/sbin/nologin --comment "Ripcord server" ripcord
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
