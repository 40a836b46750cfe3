#!/usr/bin/env bash
# Run kbsearch's tests inside a copy of the assembled root filesystem (scripts/image/assemble.sh),
# so they run on the image's Python, venv and libraries rather than the development venv's.
#
#   sudo scripts/image/test_in_rootfs.sh                      # the whole suite
#   sudo scripts/image/test_in_rootfs.sh tests/index tests/search
#
# The image itself stays as built: the tests run in BUILD_DIR/testfs, a copy that adds what only
# tests need (pip and the test requirements, slapd and ldap-utils for tests/access, Chromium for
# tests/browser, the whole repository with tests/, an /etc/hosts naming localhost as a container
# runtime would provide). The chroot shares the host's network, so PostgreSQL and Redis on 127.0.0.1
# are reached as on the host: set DATABASE_URL and KBSEARCH_TEST_REDIS_URL (your own db/number).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-/work/image-build}
TESTFS=$BUILD_DIR/testfs
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/<your_db>}"
: "${KBSEARCH_TEST_REDIS_URL:?set KBSEARCH_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379/<n>}"

MOUNTS=()
unmount_all() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" || true; done
}
trap unmount_all EXIT
bind() {  # source target [options]
    mkdir -p "$2"
    mount --bind ${3:+-o "$3"} "$1" "$2" && MOUNTS+=("$2")
}
in_chroot() {
    chroot "$TESTFS" /usr/bin/env -i PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

[ -f "$BUILD_DIR/rootfs/.complete" ] || { echo "no root filesystem: run scripts/image/assemble.sh first" >&2; exit 1; }
fresh=0
if [ ! -f "$TESTFS/.complete" ]; then
    rm -rf "$TESTFS"
    cp -a "$BUILD_DIR/rootfs" "$TESTFS"
    rm -f "$TESTFS/.complete"
    fresh=1
fi
mount -t proc proc "$TESTFS/proc" && MOUNTS+=("$TESTFS/proc")
bind /dev "$TESTFS/dev"
for dir in /opt/wheels /opt/pypi /opt/pypi-more; do [ -d "$dir" ] && bind "$dir" "$TESTFS$dir" ro; done
# The API specs the fakes are checked against live beside the checkout (../shared/apis).
[ -d "$REPO/../shared" ] && bind "$(cd "$REPO/.." && pwd)/shared" "$TESTFS/shared" ro
cp /etc/resolv.conf "$TESTFS/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$TESTFS/etc/hosts"
chmod 1777 "$TESTFS/tmp"

if [ "$fresh" = 1 ]; then
    in_chroot apt-get update -q
    in_chroot apt-get install -y -q --no-install-recommends slapd ldap-utils chromium chromium-driver python3.11-venv
    in_chroot python -m ensurepip -q
    mkdir -p "$TESTFS/build"
    cp /etc/ssl/certs/ca-certificates.crt "$TESTFS/build/host-ca.crt"
    cat /etc/pip.conf "${HOME}/.config/pip/pip.conf" 2>/dev/null | awk '!/^\[global\]/ || !seen++' \
        | sed 's#^cert *=.*#cert = /build/host-ca.crt#' > "$TESTFS/etc/pip.conf"
    touch "$TESTFS/.complete"
fi
# The repository as committed (tests, pytest.ini, scripts/slapd.py...), over the image's /app.
(cd "$REPO" && git ls-files -z | tar -cf - --null -T -) | tar -xf - -C "$TESTFS/app"
in_chroot python -m pip install -q --no-cache-dir --disable-pip-version-check \
    --constraint /app/requirements.lock --requirement /app/requirements-test.txt
in_chroot KBSEARCH_VAR_DIR=/app/var KBSEARCH_STATIC_ROOT=/app/static DATABASE_URL="$DATABASE_URL" \
    KBSEARCH_TEST_REDIS_URL="$KBSEARCH_TEST_REDIS_URL" \
    sh -c 'cd /app && exec python -m pytest -o addopts="-ra --strict-markers" -q -p no:cacheprovider "$@"' pytest "$@"
