# certs.sh - certificates for TLS tests, made by the test with openssl
# (Debian's openssl package): certificate authorities, node certificates
# for 127.0.0.1, client certificates, and expired ones. Source it after
# lib.sh (or with CAS_TMP set); every file lands in $CAS_CERTS (default
# $CAS_TMP/certs), named after what it holds:
#
#   cas_ca NAME                 NAME.crt, NAME.key: a new certificate
#                               authority (valid for 2 days)
#   cas_cert CA NAME [KIND]     NAME.crt, NAME.key: a certificate signed
#                               by CA, valid for 2 days. KIND: node (the
#                               default: server and client use, for
#                               127.0.0.1, ::1 and localhost) or client
#   cas_cert_expired CA NAME    NAME.crt, NAME.key: a client certificate
#                               signed by CA that expired in 2020
#   cas_pem NAME EXT            the path of NAME.EXT (crt or key)
#
# Keys are ECDSA P-256, mode 0600; nothing is read from or written to the
# system's configuration.

CAS_CERTS=${CAS_CERTS:-$CAS_TMP/certs}

# cas_certs_ca_config CA: the minimal `openssl ca` configuration of CA.
cas_certs_ca_config() {
	local d=$CAS_CERTS/$1.db
	if [ ! -d "$d" ]; then
		mkdir -p "$d"
		: >"$d/index"
		echo 01 >"$d/serial"
	fi
	cat >"$d/ca.cnf" <<EOF
[ca]
default_ca = this
[this]
database = $d/index
new_certs_dir = $d
serial = $d/serial
default_md = sha256
policy = anything
unique_subject = no
[anything]
commonName = supplied
[node]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
[client]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF
	echo "$d/ca.cnf"
}

cas_ca() {
	local name=$1
	mkdir -p "$CAS_CERTS"
	(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$CAS_CERTS/$name.key" -out "$CAS_CERTS/$name.crt" -days 2 \
		-subj "/CN=casfs test CA $name" -addext "basicConstraints=critical,CA:true" \
		-addext "keyUsage=critical,keyCertSign,cRLSign") >/dev/null 2>"$CAS_CERTS/$name.err" ||
		{ cat "$CAS_CERTS/$name.err" >&2; return 1; }
	chmod 644 "$CAS_CERTS/$name.crt"
}

# cas_certs_issue CA NAME KIND OPENSSL-CA-ARGS...: a key, a request, and the
# certificate CA signs.
cas_certs_issue() {
	local ca=$1 name=$2 kind=$3 cnf
	shift 3
	cnf=$(cas_certs_ca_config "$ca") || return 1
	(umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$CAS_CERTS/$name.key" -out "$CAS_CERTS/$name.csr" \
		-subj "/CN=casfs test $kind $name") >/dev/null 2>"$CAS_CERTS/$name.err" &&
		openssl ca -batch -notext -config "$cnf" -extensions "$kind" \
			-cert "$CAS_CERTS/$ca.crt" -keyfile "$CAS_CERTS/$ca.key" \
			-in "$CAS_CERTS/$name.csr" -out "$CAS_CERTS/$name.crt" "$@" \
			>/dev/null 2>>"$CAS_CERTS/$name.err" ||
		{ cat "$CAS_CERTS/$name.err" >&2; return 1; }
}

cas_cert() { cas_certs_issue "$1" "$2" "${3:-node}" -days 2; }

cas_cert_expired() {
	cas_certs_issue "$1" "$2" client -startdate 20200101000000Z -enddate 20200102000000Z
}

cas_pem() { echo "$CAS_CERTS/$1.$2"; }
