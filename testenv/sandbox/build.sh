#!/usr/bin/env bash
# Builds the sandbox root file system as a tarball for `podman import`:
#   testenv/sandbox/build.sh OUT.tar [CACHE_DIR]
# A debootstrap minbase Debian with the tools coding agents call. The mirror
# is the one this machine's apt uses, read at run time, so no host name is
# written into the repository. The image version is a hash of this directory,
# so any change here makes testenv/up build and import a new image.
set -euo pipefail

SUITE=bookworm
# minbase already brings bash, coreutils, grep, sed, findutils, tar, gzip.
PACKAGES=bash,coreutils,grep,sed,findutils,tar,gzip,git,curl,python3,ca-certificates

out="${1:?usage: build.sh OUT.tar [CACHE_DIR]}"
cache="${2:-}"

# apt_mirror prints the first enabled "deb" URI that serves $SUITE, from
# deb822 .sources files or one-line .list files.
apt_mirror() {
	local f
	shopt -s nullglob
	for f in /etc/apt/sources.list.d/*.sources; do
		awk -v suite="$SUITE" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uri != "") { print uri; found = 1; exit }
				types = suites = uri = enabled = ""
			}
			/^[[:space:]]*#/ { next }
			/^[[:space:]]*$/ { flush(); next }
			tolower($1) == "types:"   { $1 = ""; types = substr($0, 2) }
			tolower($1) == "suites:"  { $1 = ""; suites = substr($0, 2) }
			tolower($1) == "uris:"    { uri = $2 }
			tolower($1) == "enabled:" { enabled = tolower($2) }
			END { if (!found) flush() }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f "$f" ]] || continue
		# deb [options] URI SUITE COMPONENTS...
		sed -E 's/\[[^]]*\]//' "$f" | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2 }'
	done
}

mirror="$(apt_mirror | head -n 1)"
[[ -n "$mirror" ]] || { echo "build.sh: no apt source for $SUITE found in /etc/apt" >&2; exit 1; }
echo "build.sh: debootstrap $SUITE from $mirror"

work="$(dirname "$out")/root.tmp"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

args=(--variant=minbase --include="$PACKAGES")
if [[ -n "$cache" ]]; then
	mkdir -p "$cache"
	args+=(--cache-dir="$(cd "$cache" && pwd)")
fi
debootstrap "${args[@]}" "$SUITE" "$work" "$mirror"

# Package caches, lists, docs, manuals and translations are ~100 MB that no
# tool call needs.
rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/cache/apt/*.bin \
	"$work"/var/lib/apt/lists/* "$work"/var/log/* \
	"$work"/usr/share/doc/* "$work"/usr/share/man/* "$work"/usr/share/info/* \
	"$work"/usr/share/locale/* "$work"/usr/share/lintian "$work"/usr/share/i18n
# The agent's working copy is mounted here; HOME is /tmp (see changes) so
# git and python work on a read-only root.
mkdir -p "$work/workspace"

tar --numeric-owner -C "$work" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "build.sh: wrote $out ($(du -h "$out" | cut -f1))"
