# tls_smoke.sh - the nemesis smoke run over TLS: casd with its certificate,
# client certificates checked and a token; the mounts and the library with
# theirs, through the fault proxies, which pass the TLS bytes through.
. "$CAS_SRC/tests/lib.sh"
cas_tls_on
bin=$CAS_BIN/tests/nemesis
[ -x "$bin" ] || bin=$CAS_BIN/nemesis
"$bin" --tls "$CAS_CERTS" "$@"
