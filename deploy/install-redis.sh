#!/bin/sh
# Install redis-server from Debian's "redis-server" package when it is
# missing, for the tests of the Redis budget store.
#
# The package registers a system service that listens on 127.0.0.1:6379. This
# script keeps it from starting during the installation (a policy-rc.d that
# denies it, unless the machine already has a policy-rc.d), then stops and
# disables it under systemd and under SysV init alike, so only the binary
# remains. The tests start their own redis-server on 127.0.0.1 and a free port.
#
# Without apt-get, or without root, the script installs nothing and exits 0,
# and the tests that need redis-server are skipped with the reason.
set -eu

PACKAGE=redis-server
POLICY=/usr/sbin/policy-rc.d

if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-redis: apt-get not found; install redis-server yourself," \
        "or the tests that need it are skipped" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-redis: not root, so Debian's $PACKAGE package is not installed;" \
        "run 'sudo apt-get install --no-install-recommends $PACKAGE', or the" \
        "tests that need redis-server are skipped" >&2
    exit 0
fi

# invoke-rc.d and deb-systemd-invoke ask policy-rc.d before they start a
# service, and exit status 101 means "denied".
created_policy=no
if [ ! -e "$POLICY" ]; then
    cat >"$POLICY" <<POLICY_EOF
#!/bin/sh
# Written by deploy/install-redis.sh for one installation.
case "\$1" in $PACKAGE|$PACKAGE.service|redis|redis.service) exit 101 ;; esac
exit 0
POLICY_EOF
    chmod 755 "$POLICY"
    created_policy=yes
fi
remove_policy() {
    if [ "$created_policy" = yes ]; then
        rm -f "$POLICY"
    fi
}
trap remove_policy EXIT

echo "install-redis: installing Debian's $PACKAGE package" >&2
if ! { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$PACKAGE" >/dev/null; }; then
    echo "install-redis: failed to install $PACKAGE; the tests that need it" \
        "are skipped" >&2
    exit 0
fi

# Stop the service, in case something started it anyway, and keep it from
# starting at boot.
if [ -d /run/systemd/system ]; then
    systemctl disable --now "$PACKAGE.service" >/dev/null 2>&1 || true
else
    if [ -x "/etc/init.d/$PACKAGE" ]; then
        "/etc/init.d/$PACKAGE" stop >/dev/null 2>&1 || true
    fi
    # Removes the unit's symlinks without a running systemd.
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper disable "$PACKAGE.service" >/dev/null 2>&1 || true
    fi
fi
if command -v update-rc.d >/dev/null 2>&1 && [ -e "/etc/init.d/$PACKAGE" ]; then
    update-rc.d "$PACKAGE" disable >/dev/null 2>&1 || true
fi

pid_file="/run/redis/$PACKAGE.pid"
if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "install-redis: warning: the $PACKAGE service still runs with PID" \
        "$(cat "$pid_file"); stop it with '/etc/init.d/$PACKAGE stop'" >&2
fi
echo "install-redis: installed $(redis-server --version | cut -d ' ' -f 1-3)" >&2
