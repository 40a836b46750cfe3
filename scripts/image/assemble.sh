#!/usr/bin/env bash
# Assemble the kbsearch image without a container runtime: the same two stages as the root
# Dockerfile, run as chroots on the host, then committed with buildah (vfs driver, from scratch).
#
# Why: the development machines have buildah but nothing that can execute a Dockerfile's RUN steps,
# and no base image can be pulled. Package lists, copied paths and the runtime configuration are
# read from the Dockerfile itself (scripts/image/dockerfile.py), so the two cannot drift apart;
# scripts/image/check.py compares the result with the Dockerfile.
#
#   sudo scripts/image/assemble.sh            # -> image kbsearch:dev (buildah --storage-driver vfs)
#   BUILD_DIR=/elsewhere BAKE_MODEL=1 scripts/image/assemble.sh
#
# Needs root, debootstrap, buildah, and the package sources the host uses (Debian mirror; pip's
# configuration, including the local torch CPU wheel). Everything is built under BUILD_DIR, never
# inside the repository. Steps already done are kept (delete BUILD_DIR/<step> to redo one).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-/work/image-build}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
BAKE_MODEL=${BAKE_MODEL:-0}
IMAGE=${IMAGE:-kbsearch:dev}
BUILDAH=(buildah --storage-driver vfs)
DOCKERFILE_PY=(python3 "$REPO/scripts/image/dockerfile.py")

BASE=$BUILD_DIR/base-debootstrap
BUILDER=$BUILD_DIR/builder
FINAL=$BUILD_DIR/rootfs
mkdir -p "$BUILD_DIR"

log() { printf '\n== %s\n' "$*"; }

# Mount what a chroot needs, and the host's local package indexes read-only (pip's find-links and
# file:// indexes point there). Unmounted on exit, in reverse order.
MOUNTS=()
mount_into() {  # root
    local root=$1
    mount -t proc proc "$root/proc" && MOUNTS+=("$root/proc")
    mount --bind /dev "$root/dev" && MOUNTS+=("$root/dev")
    for dir in /opt/wheels /opt/pypi /opt/pypi-more; do
        [ -d "$dir" ] || continue
        mkdir -p "$root$dir"
        mount --bind -o ro "$dir" "$root$dir" && MOUNTS+=("$root$dir")
    done
    cp /etc/resolv.conf "$root/etc/resolv.conf"
}
unmount_all() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" || true; done
    MOUNTS=()
}
trap unmount_all EXIT

in_chroot() {  # root, command...
    local root=$1
    shift
    chroot "$root" /usr/bin/env -i PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# debian:bookworm-slim keeps no documentation, manual pages or translations; the same dpkg filter
# keeps the assembled root filesystem as lean as the real base.
slim_like() {  # root
    local root=$1
    cat > "$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/usr/share/lintian
}

apt_install() {  # root, packages...
    local root=$1
    shift
    in_chroot "$root" apt-get update -q
    in_chroot "$root" apt-get install -y -q --no-install-recommends "$@"
    in_chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/*
}

if [ ! -f "$BASE/.complete" ]; then
    log "debootstrap $SUITE (minbase) from $MIRROR"
    rm -rf "$BASE"
    debootstrap --variant=minbase "$SUITE" "$BASE" "$MIRROR"
    slim_like "$BASE"
    touch "$BASE/.complete"
fi

if [ ! -f "$BUILDER/.complete" ]; then
    log "builder stage: $("${DOCKERFILE_PY[@]}" packages builder)"
    rm -rf "$BUILDER"
    cp -a "$BASE" "$BUILDER"
    rm -f "$BUILDER/.complete"
    mount_into "$BUILDER"
    # shellcheck disable=SC2046
    apt_install "$BUILDER" $("${DOCKERFILE_PY[@]}" packages builder)
    # pip inside the chroot uses the host's configuration: the local torch CPU wheel (find-links)
    # and package indexes, instead of the Dockerfile's PyTorch CPU index that this machine cannot reach.
    # The host's CA bundle too: its package traffic may pass a proxy with a local certificate authority.
    mkdir -p "$BUILDER/build"
    cp /etc/ssl/certs/ca-certificates.crt "$BUILDER/build/host-ca.crt"
    cat /etc/pip.conf "${HOME}/.config/pip/pip.conf" 2>/dev/null | awk '!/^\[global\]/ || !seen++' \
        | sed 's#^cert *=.*#cert = /build/host-ca.crt#' > "$BUILDER/etc/pip.conf"
    grep -q '^cert' "$BUILDER/etc/pip.conf" || printf 'cert = /build/host-ca.crt\n' >> "$BUILDER/etc/pip.conf"
    cp "$REPO/requirements.txt" "$BUILDER/build/"
    in_chroot "$BUILDER" python3.11 -m venv /opt/venv
    in_chroot "$BUILDER" pip install -q --no-cache-dir --disable-pip-version-check --no-deps torch==2.13.0
    if [ -f "$REPO/requirements.lock" ]; then
        cp "$REPO/requirements.lock" "$BUILDER/build/"
        in_chroot "$BUILDER" pip install -q --no-cache-dir --disable-pip-version-check \
            --constraint /build/requirements.lock --requirement /build/requirements.txt
    else
        in_chroot "$BUILDER" pip install -q --no-cache-dir --disable-pip-version-check --requirement /build/requirements.txt
    fi
    # The lock the Dockerfile installs with: every package of this venv, exactly.
    in_chroot "$BUILDER" pip freeze --all --exclude pip --exclude setuptools --exclude wheel > "$BUILD_DIR/requirements.lock"
    in_chroot "$BUILDER" pip uninstall -q --yes pip setuptools wheel || true
    # The app: the paths the Dockerfile copies, as committed (git ls-files), without bytecode.
    mkdir -p "$BUILDER/app"
    # shellcheck disable=SC2046
    (cd "$REPO" && git ls-files -z -- $("${DOCKERFILE_PY[@]}" app-paths) | grep -zv '__pycache__\|\.pyc$' \
        | xargs -0 tar -cf - --) | tar -xf - -C "$BUILDER/app"
    in_chroot "$BUILDER" sh -c 'cd /app && python -m compileall -q /app \
        && KBSEARCH_VAR_DIR=/tmp/build-var KBSEARCH_STATIC_ROOT=/app/static \
            python manage.py collectstatic --noinput --verbosity 0 \
        && mkdir -p /app/models \
        && if [ "$0" = "1" ]; then \
            KBSEARCH_VAR_DIR=/tmp/build-var KBSEARCH_MODEL_CACHE_DIR=/app/models python manage.py build_model \
            && rm -f /app/models/.*.lock; \
        fi \
        && rm -rf /tmp/build-var' "$BAKE_MODEL"
    unmount_all
    rm -rf "$BUILDER/build" "$BUILDER/etc/pip.conf"
    touch "$BUILDER/.complete"
fi

if [ ! -f "$FINAL/.complete" ]; then
    log "final stage: $("${DOCKERFILE_PY[@]}" packages final)"
    rm -rf "$FINAL"
    cp -a "$BASE" "$FINAL"
    rm -f "$FINAL/.complete"
    mount_into "$FINAL"
    # shellcheck disable=SC2046
    apt_install "$FINAL" $("${DOCKERFILE_PY[@]}" packages final)
    in_chroot "$FINAL" groupadd --gid 10001 kbsearch
    in_chroot "$FINAL" useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin kbsearch
    unmount_all
    rm -rf "$FINAL/opt/wheels" "$FINAL/opt/pypi" "$FINAL/opt/pypi-more"
    rm -f "$FINAL/etc/resolv.conf" && : > "$FINAL/etc/resolv.conf"  # the runtime mounts its own
    cp -a "$BUILDER/opt/venv" "$FINAL/opt/venv"
    cp -a "$BUILDER/app" "$FINAL/app"
    install -d -o 10001 -g 10001 -m 0750 "$FINAL/app/var"
    touch "$FINAL/.complete"
fi

log "commit $IMAGE with buildah (vfs, from scratch)"
CONFIG=$("${DOCKERFILE_PY[@]}" config)
config_value() { python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[sys.argv[1]]))' "$1" <<< "$CONFIG"; }
CONTAINER=$("${BUILDAH[@]}" from scratch)
MOUNTPOINT=$("${BUILDAH[@]}" mount "$CONTAINER")
# tar keeps owners (uid 10001 on /app/var), modes and links exactly. Left out: the marker file, and
# debootstrap's device nodes (/dev, /proc and /sys come from the runtime, as with any base image).
tar -C "$FINAL" --numeric-owner --exclude=./.complete --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . | tar -C "$MOUNTPOINT" --numeric-owner -xpf -
"${BUILDAH[@]}" umount "$CONTAINER" >/dev/null
args=()
while IFS= read -r pair; do args+=(--env "$pair"); done < <(python3 -c \
    'import json,sys; [print(f"{k}={v}") for k, v in json.load(sys.stdin)["env"].items()]' <<< "$CONFIG")
while IFS= read -r volume; do args+=(--volume "$volume"); done < <(python3 -c \
    'import json,sys; [print(v) for v in json.load(sys.stdin)["volumes"]]' <<< "$CONFIG")
# EXPOSE 8000 means 8000/tcp to Docker; buildah keeps a bare number as written.
while IFS= read -r port; do args+=(--port "$port"); done < <(python3 -c \
    'import json,sys; [print(p if "/" in p else p + "/tcp") for p in json.load(sys.stdin)["ports"]]' <<< "$CONFIG")
entrypoint=$(config_value entrypoint)
[ "$entrypoint" = null ] && entrypoint='[]'
"${BUILDAH[@]}" config "${args[@]}" \
    --user "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["user"])' <<< "$CONFIG")" \
    --workingdir "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["workdir"])' <<< "$CONFIG")" \
    --entrypoint "$entrypoint" --cmd "$(config_value cmd)" \
    --label org.opencontainers.image.source=kbsearch --label "kbsearch.bake-model=$BAKE_MODEL" \
    "$CONTAINER"
"${BUILDAH[@]}" commit --quiet --rm "$CONTAINER" "$IMAGE"
"${BUILDAH[@]}" images "$IMAGE"
echo "lock file: $BUILD_DIR/requirements.lock (copy to requirements.lock when it changes)"
