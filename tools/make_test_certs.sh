#!/bin/sh
# Regenerate the simulated network's test certificates (pystack/services/certs/): a test CA and a
# server certificate for the peer (peer.sim, example.com, localhost, 10.0.0.1, 127.0.0.1), both
# EC P-256, valid for 100 years. They are test material: the keys are public, never trust the CA
# outside tests. Usage: sh tools/make_test_certs.sh [DIR]
set -eu
dir=${1:-pystack/services/certs}
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 36500 -subj "/CN=pystack test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$dir/ca.pem"
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/server.key"
openssl pkcs8 -topk8 -nocrypt -in "$tmp/server.key" -out "$dir/server.key"
openssl req -new -key "$dir/server.key" -subj "/CN=peer.sim" -out "$tmp/server.csr"
cat > "$tmp/ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:peer.sim,DNS:example.com,DNS:localhost,IP:10.0.0.1,IP:127.0.0.1
EXT
openssl x509 -req -in "$tmp/server.csr" -CA "$dir/ca.pem" -CAkey "$tmp/ca.key" -CAserial "$tmp/ca.srl" -CAcreateserial \
  -days 36500 -sha256 -extfile "$tmp/ext" -out "$dir/server.pem"
openssl x509 -in "$dir/ca.pem" -outform DER -out "$dir/ca.der"
chmod 644 "$dir/server.key"
echo "wrote $dir/ca.pem, ca.der, server.pem, server.key"
