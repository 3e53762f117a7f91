#!/bin/sh
# setup-conformance.sh: install QEMU + busybox and unpack the Debian 6.1 and 6.12 kernel images
# used by the real-kernel recorder (cmd/mcheck-record) into build/kernels/<release>/.
# Idempotent: packages already installed and kernels already unpacked are left alone.
# Must run as root on Debian bookworm (apt-get). Nothing is installed from the kernel packages:
# they are only downloaded and unpacked with dpkg-deb -x.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KDIR="$ROOT/build/kernels"
DL="$ROOT/build/debs"
mkdir -p "$KDIR" "$DL"

need_pkgs=""
for p in qemu-system-x86 busybox-static cpio; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		need_pkgs="$need_pkgs $p"
	fi
done
if [ -n "$need_pkgs" ]; then
	apt-get update
	apt-get install -y qemu-system-x86 busybox-static cpio
fi

# resolve a meta package (linux-image-amd64 -> linux-image-6.1.0-NN-amd64) to its concrete image
concrete() {
	apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'
}

fetch() { # $1 = meta package
	pkg=$(concrete "$1")
	if [ -z "$pkg" ]; then
		if ! apt-cache policy "$1" | grep -q Candidate; then
			apt-get update
		fi
		pkg=$(concrete "$1")
	fi
	[ -n "$pkg" ] || { echo "setup: cannot resolve $1" >&2; exit 1; }
	release=${pkg#linux-image-}
	dest="$KDIR/$release"
	if [ -f "$dest/vmlinuz" ] && [ -f "$dest/package" ]; then
		echo "have   $release ($(cat "$dest/package"))"
		return
	fi
	(cd "$DL" && apt-get download "$pkg")
	deb=$(ls -t "$DL/${pkg}_"*.deb | head -n 1)
	rm -rf "$dest.tmp"
	mkdir -p "$dest.tmp/root"
	dpkg-deb -x "$deb" "$dest.tmp/root"
	cp "$dest.tmp/root/boot/vmlinuz-$release" "$dest.tmp/vmlinuz"
	cp "$dest.tmp/root/boot/config-$release" "$dest.tmp/config"
	basename "$deb" .deb >"$dest.tmp/package"
	echo "$release" >"$dest.tmp/release"
	rm -rf "$dest.tmp/root" # modules are not needed: memory hotplug is built in
	rm -rf "$dest"
	mv "$dest.tmp" "$dest"
	echo "got    $release ($(cat "$dest/package"))"
}

fetch linux-image-amd64    # bookworm's 6.1
fetch linux-image-6.12-amd64 # bookworm's 6.12 (bookworm-security / point releases, not backports)

for d in "$KDIR"/*/; do
	r=$(basename "$d")
	printf '%s: ' "$r"
	grep -E '^CONFIG_(ACPI_HOTPLUG_MEMORY|MEMORY_HOTREMOVE|MHP_MEMMAP_ON_MEMORY)=' "$d/config" | tr '\n' ' '
	echo
done
qemu-system-x86_64 --version | head -n 1
echo "busybox: $(command -v busybox)"
