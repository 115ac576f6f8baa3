#!/bin/sh
# Checks that third_party/go-smtp is exactly the go-smtp release that
# go.mod requires with third_party/go-smtp.patch applied: the release is
# fetched with `go mod download`, patched in a temporary directory, and
# compared with the copy file for file (all files but those git ignores).
#
#   third_party/check-patch.sh           check (run by `make test`)
#   third_party/check-patch.sh -update   rewrite the patch from the copy
set -eu

go=${GO:-go}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mod=github.com/emersion/go-smtp
copy=$here/go-smtp
patch=$here/go-smtp.patch

version=$(cd "$root" && "$go" list -m -f '{{.Version}}' "$mod")
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
# Outside the module: its replace must not stand in for the release.
dir=$(cd "$tmp" && "$go" mod download -json "$mod@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
	echo "check-patch: go mod download $mod@$version gave no directory" >&2
	exit 1
fi

# a: the release, writable (the module cache is read-only).
mkdir "$tmp/a" "$tmp/b"
cp -R "$dir/." "$tmp/a/"
chmod -R u+w "$tmp/a"
# b: the copy's files, those git does not ignore (not a test binary or a
# profile left by go test), committed or not.
(cd "$copy" && git ls-files -z -c -o --exclude-standard | tar --null -T - -cf -) |
	(cd "$tmp/b" && tar -xf -)

if [ "${1:-}" = -update ]; then
	status=0
	(cd "$tmp" && git -c core.quotePath=false diff --no-index --no-color --no-ext-diff \
		--no-renames --no-prefix a b) >"$patch" || status=$?
	if [ "$status" -gt 1 ]; then
		echo "check-patch: git diff failed" >&2
		exit 1
	fi
	echo "check-patch: wrote $patch ($mod $version to third_party/go-smtp)"
	exit 0
fi

# A repository of its own, so that git apply works inside it wherever
# the temporary directory is.
git init -q "$tmp/a"
if ! git -C "$tmp/a" apply --whitespace=nowarn "$patch"; then
	echo "check-patch: $patch does not apply to $mod $version" >&2
	exit 1
fi
if ! diff -r -x .git "$tmp/a" "$tmp/b" >"$tmp/diff"; then
	echo "check-patch: third_party/go-smtp is not $mod $version with $patch applied:" >&2
	head -n 100 "$tmp/diff" >&2
	echo "If the change is meant, run third_party/check-patch.sh -update and commit the patch." >&2
	exit 1
fi
echo "check-patch: third_party/go-smtp is $mod $version with go-smtp.patch"
