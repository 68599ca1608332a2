#!/bin/sh
# Install the handwriting fonts listed in synth/data/fontsource.txt (npm's @fontsource packages, exact versions)
# into DEST: one file per family, its latin regular face (woff2, which FreeType and so Pillow read).
# Usage: deploy/fontsource.sh LIST DEST. Does nothing when every file is already there; otherwise installs with
# npm into a temporary folder and copies the files in, so an interrupted run leaves no partial file in DEST.
set -eu
list=$1
dest=$2
packages=$(grep -v '^#' "$list" | awk 'NF == 2 { print $1 }')
missing=
for id in $packages; do
	[ -s "$dest/$id-latin-400-normal.woff2" ] || missing="$missing $id"
done
[ -z "$missing" ] && exit 0
command -v npm >/dev/null || { echo "npm is needed to install the handwriting fonts (Debian package npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
specs=$(grep -v '^#' "$list" | awk 'NF == 2 { printf "@fontsource/%s@%s ", $1, $2 }')
echo "installing $(echo $missing | wc -w) handwriting fonts from npm (@fontsource)"
# shellcheck disable=SC2086
npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$work" $specs >/dev/null
mkdir -p "$dest"
for id in $packages; do
	file="$work/node_modules/@fontsource/$id/files/$id-latin-400-normal.woff2"
	[ -s "$file" ] || { echo "@fontsource/$id has no $id-latin-400-normal.woff2" >&2; exit 1; }
	cp "$file" "$dest/.$id.tmp" && mv "$dest/.$id.tmp" "$dest/$id-latin-400-normal.woff2"
done
