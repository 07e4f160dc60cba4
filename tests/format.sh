#!/usr/bin/env bash
# format.sh - checks that every C source and header follows .clang-format:
# a dry run that lists the files that differ and fails when any does.
# Usage: tests/format.sh [--fix]   (--fix formats them in place instead)
set -eu
cd "$(dirname "$0")/.."

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	mapfile -t files < <(git ls-files -co --exclude-standard -- '*.c' '*.h')
else
	mapfile -t files < <(find consensus fs include tests examples -name '*.[ch]' | sort)
fi
if [ "${1:-}" = --fix ]; then
	clang-format -i "${files[@]}"
	exit 0
fi
bad=()
for f in "${files[@]}"; do
	[ -f "$f" ] || continue
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
	echo "format.sh: ${#bad[@]} file(s) differ from .clang-format (tests/format.sh --fix):" >&2
	printf '  %s\n' "${bad[@]}" >&2
	exit 1
fi
echo "format.sh: ${#files[@]} files follow .clang-format"
