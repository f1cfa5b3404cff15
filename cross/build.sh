#!/usr/bin/env bash
# Build monitord and monitorctl for the Raspberry Pi (and amd64), and monitor-server for
# the targets that get a package, then package them.
#
#   cross/build.sh                                  every target below, and the packages
#   cross/build.sh armv7-unknown-linux-gnueabihf    only these targets (and their packages)
#   MONITOR_SERVER=0 cross/build.sh                 the agent only (no monitor-server)
#
# Writes, under dist/ (or $MONITOR_DIST):
#   <target>/monitord, <target>/monitorctl     stripped release binaries
#   <target>/monitor-server                    stripped, profile release-server (unwinds on panic)
#   monitor_<version>_<arch>.deb               for arm64 (the static musl build), armhf, amd64
#   monitor-server_<version>_<arch>.deb        the same three architectures
#   monitor-<version>-<target>.tar.xz          the binaries, units and default config
#   sizes.tsv                                  binary sizes per target (bench/ reads it)
#
# On a fresh x86-64 Debian machine it installs what it needs: the rustup targets, `file`
# and dpkg-dev from apt, and cargo-zigbuild with the Zig toolchain from PyPI in a venv
# under the target folder. Zig links the gnu targets against glibc 2.28 (so they run on
# Raspberry Pi OS Buster and later) and gives the musl target a C compiler for ring.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(
    aarch64-unknown-linux-musl      # 64-bit Pi OS (Pi 3/4/5), static: the main artifact
    armv7-unknown-linux-gnueabihf   # 32-bit Pi OS (Pi 2/3/4), glibc >= 2.28
    aarch64-unknown-linux-gnu       # 64-bit, glibc >= 2.28
    x86_64-unknown-linux-gnu        # amd64 machines, glibc >= 2.28
)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

# monitord on armv7 (the tightest Pi) must stay under this.
armv7_monitord_budget=$((6 * 1024 * 1024))
zigbuild_version=0.24.0
ziglang_version=0.17.1

dist=${MONITOR_DIST:-dist}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
target_dir=$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || target_dir=${CARGO_TARGET_DIR:-target}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
say() { printf '==> %s\n' "$*" >&2; }

# The zig triple: gnu targets pinned to glibc 2.28.
zig_target() {
    case $1 in
        *-gnu | *-gnueabihf) echo "$1.2.28" ;;
        *) echo "$1" ;;
    esac
}

# The Debian architecture a target is packaged as (none: tarball only).
deb_arch() {
    case $1 in
        aarch64-unknown-linux-musl) echo arm64 ;;
        armv7-unknown-linux-gnueabihf) echo armhf ;;
        x86_64-unknown-linux-gnu) echo amd64 ;;
        *) echo "" ;;
    esac
}

install_tools() {
    local missing=()
    command -v file >/dev/null || missing+=(file)
    command -v dpkg-deb >/dev/null || missing+=(dpkg)
    command -v gzip >/dev/null || missing+=(gzip)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    if [ ${#missing[@]} -gt 0 ]; then
        say "apt: ${missing[*]}"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    fi

    local installed
    installed=$(rustup target list --installed)
    for target in "${targets[@]}"; do
        grep -qx "$target" <<<"$installed" || rustup target add "$target"
    done

    tools=$target_dir/cross-tools
    if ! "$tools/bin/cargo-zigbuild" --version 2>/dev/null | grep -q "$zigbuild_version"; then
        say "cargo-zigbuild $zigbuild_version and ziglang $ziglang_version into $tools"
        python3 -m venv "$tools"
        "$tools/bin/pip" install -q --disable-pip-version-check \
            "cargo-zigbuild==$zigbuild_version" "ziglang==$ziglang_version"
    fi
    export PATH="$tools/bin:$PATH"
}

# The targets monitor-server is built for: those with a package (the server runs on a
# Pi or a small VM, and is installed from its .deb there).
server_targets() {
    [ "${MONITOR_SERVER:-1}" != 0 ] || return 0
    for target in "${targets[@]}"; do
        [ -z "$(deb_arch "$target")" ] || echo "$target"
    done
}

build() {
    local args=() server_args=() servers=()
    for target in "${targets[@]}"; do
        args+=(--target "$(zig_target "$target")")
    done
    say "cargo zigbuild --release ${args[*]}"
    cargo zigbuild --release --locked -p monitor --bins "${args[@]}"
    for target in "${targets[@]}"; do
        mkdir -p "$dist/$target"
        for binary in monitord monitorctl; do
            cp "$target_dir/$target/release/$binary" "$dist/$target/$binary"
        done
    done

    mapfile -t servers < <(server_targets)
    [ ${#servers[@]} -gt 0 ] || return 0
    for target in "${servers[@]}"; do
        server_args+=(--target "$(zig_target "$target")")
    done
    # Its own profile (panic = "unwind"), so its own build of every dependency.
    say "cargo zigbuild --profile release-server -p monitor-server ${server_args[*]}"
    local started=$SECONDS
    cargo zigbuild --profile release-server --locked -p monitor-server "${server_args[@]}"
    say "monitor-server built for ${#servers[@]} targets in $((SECONDS - started)) s"
    for target in "${servers[@]}"; do
        cp "$target_dir/$target/release-server/monitor-server" "$dist/$target/monitor-server"
    done
}

# Man pages and completions, rendered once on this machine from the CLI definitions.
render_docs() {
    say "man pages and shell completions"
    rm -rf "$dist/docs"
    cargo run -q --locked -p monitor --example cli_docs -- "$dist/docs"
}

report_sizes() {
    local sizes=$dist/sizes.tsv over=0
    printf 'target\tbinary\tbytes\n' >"$sizes"
    printf '\n%-32s %-14s %10s %9s\n' target binary bytes MiB
    for target in "${targets[@]}"; do
        local binaries=(monitord monitorctl)
        # monitor-server has no size budget; its size is reported.
        if grep -qx "$target" <(server_targets); then binaries+=(monitor-server); fi
        for binary in "${binaries[@]}"; do
            local bytes
            bytes=$(stat -c %s "$dist/$target/$binary")
            printf '%s\t%s\t%s\n' "$target" "$binary" "$bytes" >>"$sizes"
            awk -v t="$target" -v b="$binary" -v n="$bytes" \
                'BEGIN { printf "%-32s %-14s %10d %9.2f\n", t, b, n, n / 1048576 }'
            if [ "$target" = armv7-unknown-linux-gnueabihf ] && [ "$binary" = monitord ] \
                && [ "$bytes" -ge "$armv7_monitord_budget" ]; then
                echo "error: monitord for armv7 is over its budget of 6 MiB ($bytes bytes)" >&2
                over=1
            fi
        done
        file -b "$dist/$target/monitord" | sed "s|^|  $target: |"
        case $target in
            *-gnu | *-gnueabihf)
                # What the Pi's glibc must at least be: 2.28 (Buster), as zig was asked.
                local needs
                needs=$(for binary in "${binaries[@]}"; do readelf -W --dyn-syms "$dist/$target/$binary"; done \
                    | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1)
                echo "  $target: needs $needs"
                if [ "$(printf '%s\n' "$needs" GLIBC_2.28 | sort -V | tail -n1)" != GLIBC_2.28 ]; then
                    echo "error: $target binaries need $needs, more than glibc 2.28" >&2
                    over=1
                fi
                ;;
        esac
    done
    echo
    [ "$over" = 0 ] || exit 1
}

# A .deb from the binaries of one target, laid out as Debian expects.
package_deb() {
    local target=$1 arch=$2
    local root=$dist/deb-$arch
    rm -rf "$root"
    install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" \
        "$root/usr/lib/systemd/user" "$root/etc/monitor/available" "$root/etc/monitor/enabled" \
        "$root/var/lib/monitor" "$root/usr/share/man/man1" "$root/usr/share/man/man8" \
        "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
        "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/monitor/examples"
    install -m 0755 "$dist/$target/monitord" "$dist/$target/monitorctl" "$root/usr/bin/"
    install -m 0644 config/systemd/monitord.service config/systemd/monitor-failure@.service \
        "$root/usr/lib/systemd/system/"
    install -m 0644 config/systemd/user/monitor-failure@.service "$root/usr/lib/systemd/user/"
    install -m 0644 config/monitor.yaml "$root/etc/monitor/monitor.yaml"
    chmod 0750 "$root/var/lib/monitor"
    for page in "$dist"/docs/man/*.1; do gzip -9n <"$page" >"$root/usr/share/man/man1/$(basename "$page").gz"; done
    for page in "$dist"/docs/man/*.8; do gzip -9n <"$page" >"$root/usr/share/man/man8/$(basename "$page").gz"; done
    for binary in monitord monitorctl; do
        install -m 0644 "$dist/docs/completions/bash/$binary.bash" \
            "$root/usr/share/bash-completion/completions/$binary"
        install -m 0644 "$dist/docs/completions/zsh/_$binary" "$root/usr/share/zsh/vendor-completions/"
        install -m 0644 "$dist/docs/completions/fish/$binary.fish" \
            "$root/usr/share/fish/vendor_completions.d/"
    done
    install -m 0644 README.md "$root/usr/share/doc/monitor/"
    cp -r examples/config examples/crasher "$root/usr/share/doc/monitor/examples/"
    cat >"$root/usr/share/doc/monitor/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: monitor
Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
EOF

    local depends=""
    case $target in
        *-gnu | *-gnueabihf) depends="Depends: libc6 (>= 2.28)" ;;
    esac
    cat >"$root/DEBIAN/control" <<EOF
Package: monitor
Version: $version
Architecture: $arch
Maintainer: monitor developers <monitor@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
${depends:+$depends
}Recommends: systemd
Section: admin
Priority: optional
Homepage: https://example.invalid/monitor
Description: event-driven device monitoring agent (Mender Monitor compatible)
 monitord watches log files, command output, systemd services, Docker
 containers and D-Bus signals, and raises CRITICAL and OK alerts with Mender
 Monitor's names and wire format, delivered to Discord webhooks and to a
 devicemonitor backend through a durable outbox. monitorctl manages its checks
 with mender-monitorctl's verbs and argument order.
EOF
    echo /etc/monitor/monitor.yaml >"$root/DEBIAN/conffiles"
    cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# The service is installed, not started: enable it once it has checks
# (systemctl enable --now monitord).
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    # An upgrade restarts a running agent on the new binary.
    if [ -n "$2" ] && systemctl is-active --quiet monitord.service; then
        systemctl restart monitord.service || true
    fi
fi
exit 0
EOF
    cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now monitord.service >/dev/null 2>&1 || true
fi
exit 0
EOF
    cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    # Offsets, alert state, the history and undelivered alerts.
    rm -rf /var/lib/monitor
    # Check files are the admin's: the folders go only when empty.
    rmdir --ignore-fail-on-non-empty /etc/monitor/enabled /etc/monitor/available /etc/monitor 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
EOF
    chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
    local deb=$dist/monitor_${version}_$arch.deb
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
    rm -rf "$root"
    say "$deb"
}

# monitor-server's .deb: the binary, its hardened unit, a settings file, and the system
# user the unit runs as.
package_server_deb() {
    local target=$1 arch=$2
    local root=$dist/deb-server-$arch
    rm -rf "$root"
    install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" \
        "$root/etc/default" "$root/usr/share/doc/monitor-server"
    install -m 0755 "$dist/$target/monitor-server" "$root/usr/bin/"
    install -m 0644 config/systemd/monitor-server.service "$root/usr/lib/systemd/system/"
    # It may hold the PostgreSQL and SMTP passwords: root's only (systemd reads it as root).
    install -m 0600 config/monitor-server.default "$root/etc/default/monitor-server"
    install -m 0644 README.md "$root/usr/share/doc/monitor-server/"
    cat >"$root/usr/share/doc/monitor-server/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: monitor
Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
EOF

    local depends="adduser"
    case $target in
        *-gnu | *-gnueabihf) depends="libc6 (>= 2.28), $depends" ;;
    esac
    cat >"$root/DEBIAN/control" <<EOF
Package: monitor-server
Version: $version
Architecture: $arch
Maintainer: monitor developers <monitor@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Recommends: systemd
Suggests: postgresql
Section: net
Priority: optional
Homepage: https://example.invalid/monitor
Description: self-hosted backend for monitord's alerts (Mender devicemonitor API)
 monitor-server receives the alerts of monitord agents (and of Mender's own
 client) over Mender's devicemonitor API, keeps them in SQLite or PostgreSQL,
 shows them on a dashboard and in the management API, and sends notifications
 by email and to Discord webhooks.
EOF
    echo /etc/default/monitor-server >"$root/DEBIAN/conffiles"
    cat >"$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
# The service runs as the system user monitor-server; it is installed, not started
# (systemctl enable --now monitor-server).
set -e
if [ "$1" = configure ]; then
    if ! getent passwd monitor-server >/dev/null; then
        adduser --system --group --quiet --home /var/lib/monitor-server --no-create-home \
            --gecos monitor-server monitor-server
    fi
    # The admin commands run as that user before the first start, on the same files.
    install -d -o monitor-server -g monitor-server -m 0700 /var/lib/monitor-server
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        # An upgrade restarts a running server on the new binary.
        if [ -n "$2" ] && systemctl is-active --quiet monitor-server.service; then
            systemctl restart monitor-server.service || true
        fi
    fi
fi
exit 0
POSTINST
    cat >"$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now monitor-server.service >/dev/null 2>&1 || true
fi
exit 0
PRERM
    cat >"$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    # The database and the signing key. The system user stays (Debian's practice: files
    # it owned elsewhere, such as backups, keep a known owner).
    rm -rf /var/lib/monitor-server
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
exit 0
POSTRM
    chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
    local deb=$dist/monitor-server_${version}_$arch.deb
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
    rm -rf "$root"
    say "$deb"
}

package_tarball() {
    local target=$1
    local name=monitor-$version-$target
    local staging=$dist/$name
    rm -rf "$staging"
    install -d "$staging/systemd/user" "$staging/man" "$staging/completions"
    cp "$dist/$target/monitord" "$dist/$target/monitorctl" README.md "$staging/"
    cp config/monitor.yaml "$staging/"
    cp config/systemd/*.service "$staging/systemd/"
    cp config/systemd/user/*.service "$staging/systemd/user/"
    cp "$dist"/docs/man/* "$staging/man/"
    cp -r "$dist"/docs/completions/* "$staging/completions/"
    tar -C "$dist" -cJf "$dist/$name.tar.xz" --owner=0 --group=0 "$name"
    rm -rf "$staging"
    say "$dist/$name.tar.xz"
}

install_tools
build
render_docs
report_sizes
for target in "${targets[@]}"; do
    arch=$(deb_arch "$target")
    [ -z "$arch" ] || package_deb "$target" "$arch"
    package_tarball "$target"
done
for target in $(server_targets); do
    package_server_deb "$target" "$(deb_arch "$target")"
done
