#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer; start or install them if not.
# Also installs Debian's Chromium for the browser tests when it is missing.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { $SUDO apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL…"; apt_install postgresql
  fi
  version=$(ls /etc/postgresql | sort -n | tail -1)
  conf=/etc/postgresql/$version/main
  # Trust loopback connections: a throw-away test server on this machine only.
  if ! grep -q "loafy-ci" "$conf/pg_hba.conf"; then
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust # loafy-ci\nlocal all all trust # loafy-ci' "$conf/pg_hba.conf"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do port_open 5432 && break; sleep 1; done
fi
port_open 5432 || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }

if ! port_open 6379; then
  command -v redis-server >/dev/null || { echo "installing Redis…"; apt_install redis-server; }
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 20); do port_open 6379 && break; sleep 0.5; done
fi
port_open 6379 || { echo "Redis did not start on 127.0.0.1:6379" >&2; exit 1; }

if [ ! -x /usr/lib/chromium/chromium ]; then
  echo "installing Chromium for the browser tests…"; apt_install chromium fonts-dejavu-core
fi
# axe-core (from the npm registry) for the accessibility test.
if [ ! -f .cache/axe/node_modules/axe-core/axe.min.js ]; then
  command -v npm >/dev/null || { echo "installing npm…"; apt_install npm; }
  npm install --silent --no-audit --no-fund --prefix .cache/axe axe-core@4 >/dev/null
fi
# aiosmtpd (a real SMTP server for the mail tests), kept out of the venv: its atpublic dependency
# installs a top-level module named `public`, which would shadow this project's `public` package
# for the `loafy` command. tests/test_mail_smtp.py imports it from here.
if [ ! -d .cache/smtp/aiosmtpd ]; then
  "${VENV:-.venv}/bin/pip" install --quiet --target .cache/smtp "aiosmtpd>=1.4,<2"
fi
echo "services: PostgreSQL and Redis are up; Chromium at /usr/lib/chromium/chromium; axe-core and aiosmtpd ready"
