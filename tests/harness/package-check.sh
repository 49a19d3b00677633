#!/usr/bin/env bash
# Builds the Debian package with cargo-deb, installs it with dpkg on this machine, runs
# the installed binary's check-config against the installed configuration and sample,
# removes the package and checks that only the configuration (/etc/glance) stays, then purges it and
# checks that nothing stays. Needs root, dpkg and cargo-deb; .ci/run calls it.
#
#   bash tests/harness/package-check.sh [--deb FILE]   (FILE: skip the build)
set -euo pipefail
cd "$(dirname "$0")/../.."

deb=""
if [ "${1:-}" = "--deb" ]; then deb=$2; fi
fail() { echo "package-check: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
if dpkg -s glance-cache-proxy >/dev/null 2>&1; then
  fail "glance-cache-proxy is already installed here; remove it first (dpkg -P glance-cache-proxy)"
fi
if [ -z "$deb" ]; then
  cargo deb -p glance-cache-proxy --strip
  deb=$(ls -t target/debian/glance-cache-proxy_*.deb | head -1)
fi
echo "package-check: $deb ($(du -h "$deb" | cut -f1))"

# Every shared library the binary links must be a dependency (libcrypto: the default
# `openssl` feature), so that dpkg refuses the package on a node that lacks one.
depends=$(dpkg-deb -f "$deb" Depends)
echo "package-check: Depends: $depends"
for lib in libc6 libssl3; do
  case "$depends" in *"$lib"*) ;; *) fail "Depends lacks $lib: $depends";; esac
done

# Files the package owns (directories aside), for the checks after removal.
mapfile -t owned < <(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }')

dpkg -i "$deb"
command -v glance-cache-proxy | grep -qx /usr/bin/glance-cache-proxy || fail "not on PATH as /usr/bin/glance-cache-proxy"
getent passwd glance >/dev/null || fail "no glance user"
[ "$(stat -c '%U:%G %a' /var/lib/glance/image-cache)" = "glance:glance 750" ] \
  || fail "cache directory: $(stat -c '%U:%G %a' /var/lib/glance/image-cache)"
[ "$(stat -c '%U:%G %a' /etc/glance/glance-cache-proxy.conf)" = "root:glance 640" ] \
  || fail "configuration: $(stat -c '%U:%G %a' /etc/glance/glance-cache-proxy.conf)"
for name in glance-cache-pruner glance-cache-cleaner glance-cache-prefetcher glance-cache-manage; do
  [ -x "/usr/libexec/glance-cache-proxy/$name" ] || fail "/usr/libexec/glance-cache-proxy/$name missing"
done
/usr/bin/glance-cache-proxy check-config --config-file /etc/glance/glance-cache-proxy.conf
/usr/bin/glance-cache-proxy check-config --config-file /etc/glance/glance-cache-proxy.conf.sample
# Glance's names run the matching subcommand.
/usr/libexec/glance-cache-proxy/glance-cache-pruner --help | grep -q "glance-cache-proxy prune" \
  || fail "glance-cache-pruner does not run prune"
if command -v systemd-analyze >/dev/null 2>&1; then
  SYSTEMD_LOG_LEVEL=warning systemd-analyze verify /lib/systemd/system/glance-cache-*.service \
    /lib/systemd/system/glance-cache-*.timer 2>&1 | { grep glance-cache && exit 1 || true; }
fi

# An edited configuration survives a reinstall.
echo "# edited by package-check" >> /etc/glance/glance-cache-proxy.conf
dpkg -i --force-confdef --force-confold "$deb" >/dev/null
grep -q "edited by package-check" /etc/glance/glance-cache-proxy.conf || fail "the edited configuration was replaced"

dpkg -r glance-cache-proxy
for f in "${owned[@]}"; do
  case "$f" in
    # Configuration files (dpkg conffiles) stay until purge.
    /etc/glance/*) [ -e "$f" ] || fail "$f (configuration) went with remove" ;;
    *) { [ -e "$f" ] || [ -L "$f" ]; } && fail "$f is still there after remove" ;;
  esac
done
for name in glance-cache-pruner glance-cache-cleaner glance-cache-prefetcher glance-cache-manage; do
  [ -L "/usr/bin/$name" ] && [ "$(readlink "/usr/bin/$name")" = "/usr/libexec/glance-cache-proxy/$name" ] \
    && fail "/usr/bin/$name still links to the removed package"
done
[ -e /var/lib/glance/image-cache ] && fail "the empty cache directory stayed"

dpkg -P glance-cache-proxy
for f in /etc/glance/glance-cache-proxy.conf /etc/glance/glance-cache-proxy.conf.sample; do
  [ -e "$f" ] && fail "purge left $f"
done
echo "package-check: ok (installed, checked, removed leaving only the configuration, purged)"
