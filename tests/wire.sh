# wire.sh - builders of the binary wire form for shell tests
# (consensus/PROTOCOL.md, "Binary form" and "Batches"): each prints its
# bytes on stdout. Source it (bash).

# le BYTES VALUE: VALUE as BYTES little-endian bytes.
le() {
	local i
	for ((i = 0; i < $1; i++)); do
		printf "\\x$(printf %02x $((($2 >> (8 * i)) & 255)))"
	done
}
# bkey KEY: the key, after its one-byte length.
bkey() { le 1 ${#1}; printf '%s' "$1"; }
# bballot COUNTER ID
bballot() { le 8 "$1"; le 8 "$2"; }
# brecent I VERSION: recent entry I of a value at VERSION: proposer 9, op
# 1. A script that wants other entries redefines it.
brecent() { le 8 9; le 8 1; le 8 "$2"; }
# bvalue VERSION DATA [N_RECENT]: a value with N_RECENT (default 0) entries.
bvalue() {
	local i
	le 8 "$1"; le 1 "${3:-0}"
	for ((i = 0; i < ${3:-0}; i++)); do brecent "$i" "$1"; done
	le 4 ${#2}; printf '%s' "$2"
}
# bprepare KEY COUNTER ID
bprepare() { printf '\xc1\x01'; bkey "$1"; bballot "$2" "$3"; }
# baccept KEY COUNTER ID VERSION DATA [N_RECENT]
baccept() { printf '\xc1\x02'; bkey "$1"; bballot "$2" "$3"; bballot 0 0; bvalue "$4" "$5" "${6:-0}"; }
# bquery KEY
bquery() { printf '\xc1\x03'; bkey "$1"; }
# bitem CMD...: what CMD prints, framed as a batch item (its 4-byte length
# first). Uses $CAS_TMP (lib.sh) for the item.
bitem() { "$@" >"$CAS_TMP/item"; le 4 "$(stat -c %s "$CAS_TMP/item")"; cat "$CAS_TMP/item"; }
