#!/usr/bin/env bash
# Check the packages cross/build.sh made: each .deb has the right architecture, fields and
# files; the one for this machine installs with dpkg -i to a working monitorctl, and purges.
#
#   cross/check-packages.sh            (as root, after cross/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${MONITOR_DIST:-dist}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
fail() { echo "check-packages: $*" >&2; exit 1; }

expected_files=(
    ./usr/bin/monitord
    ./usr/bin/monitorctl
    ./usr/lib/systemd/system/monitord.service
    ./usr/lib/systemd/system/monitor-failure@.service
    ./usr/lib/systemd/user/monitor-failure@.service
    ./etc/monitor/monitor.yaml
    ./etc/monitor/available/
    ./etc/monitor/enabled/
    ./var/lib/monitor/
    ./usr/share/man/man8/monitord.8.gz
    ./usr/share/man/man1/monitorctl.1.gz
    ./usr/share/man/man1/monitorctl-create-log.1.gz
    ./usr/share/bash-completion/completions/monitorctl
    ./usr/share/zsh/vendor-completions/_monitorctl
    ./usr/share/fish/vendor_completions.d/monitorctl.fish
    ./usr/share/doc/monitor/copyright
)

declare -A file_says=(
    [arm64]="ARM aarch64"
    [armhf]="ARM, EABI5"
    [amd64]="x86-64"
)

checked=0
for arch in arm64 armhf amd64; do
    deb=$dist/monitor_${version}_$arch.deb
    [ -f "$deb" ] || continue
    checked=$((checked + 1))
    info=$(dpkg-deb --info "$deb")
    for field in "Package: monitor" "Version: $version" "Architecture: $arch" \
        "Section: admin" "Description: "; do
        grep -q "^ $field" <<<"$info" || fail "$deb: no '$field' in its control file"
    done
    [ "$(dpkg-deb --field "$deb" Architecture)" = "$arch" ] || fail "$deb: wrong Architecture"
    grep -qx "/etc/monitor/monitor.yaml" <(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles) \
        || fail "$deb: monitor.yaml is not a conffile"
    contents=$(dpkg-deb --contents "$deb")
    for path in "${expected_files[@]}"; do
        grep -q " $path\$" <<<"$contents" || fail "$deb: $path is missing"
    done
    grep -q "^-rwxr-xr-x root/root .* ./usr/bin/monitord$" <<<"$contents" \
        || fail "$deb: /usr/bin/monitord is not an executable owned by root"
    extracted=$(mktemp -d)
    dpkg-deb --extract "$deb" "$extracted"
    file -b "$extracted/usr/bin/monitord" | grep -q "${file_says[$arch]}" \
        || fail "$deb: monitord is not $arch: $(file -b "$extracted/usr/bin/monitord")"
    rm -rf "$extracted"
    echo "ok: $deb ($(stat -c %s "$deb") bytes)"
done
[ "$checked" -gt 0 ] || fail "no packages in $dist; run cross/build.sh"

# Install this machine's package, use it, and purge it.
native=$(dpkg --print-architecture)
deb=$dist/monitor_${version}_$native.deb
[ -f "$deb" ] || { echo "no $native package to install; done"; exit 0; }
[ "$(id -u)" = 0 ] || fail "installing $deb needs root"
if dpkg -s monitor >/dev/null 2>&1; then fail "a monitor package is installed already"; fi
# An admin's checks outlive a purge; a run stopped halfway leaves its own behind.
[ ! -e /etc/monitor ] || fail "/etc/monitor exists without the package (left by an earlier run?): remove it first"
dpkg -i "$deb" >/dev/null
trap 'dpkg --purge monitor >/dev/null 2>&1 || true; rm -rf /etc/monitor' EXIT
[ "$(monitorctl --version)" = "monitorctl $version" ] || fail "monitorctl --version: $(monitorctl --version)"
[ "$(monitord --version)" = "monitord $version" ] || fail "monitord --version"
grep -q "no problems" <<<"$(monitorctl validate)" || fail "monitorctl validate on the default /etc/monitor"
monitorctl create log syslog_errors 'error' /var/log/syslog 5m
monitorctl enable log syslog_errors
grep -q "syslog_errors" <<<"$(monitorctl list)" || fail "monitorctl list does not show the new check"
[ -L /etc/monitor/enabled/log_syslog_errors.yaml ] || fail "enable did not link the check"
[ -d /var/lib/monitor ] || fail "/var/lib/monitor is missing"
dpkg --purge monitor >/dev/null
trap - EXIT
if [ -e /usr/bin/monitorctl ] || [ -e /var/lib/monitor ]; then fail "purge left files behind"; fi
[ -e /etc/monitor/available/log_syslog_errors.yaml ] || fail "purge deleted the admin's check file"
rm -rf /etc/monitor
echo "ok: $deb installs, runs monitorctl, and purges"
