package wiretest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// TLSConfigs are the TLS settings of a mutual-TLS test: a private CA, a
// server certificate for the loopback addresses and a client certificate.
type TLSConfigs struct {
	Server       *tls.Config // requires and verifies a client certificate
	Client       *tls.Config // trusts the CA and presents the client certificate
	ClientNoCert *tls.Config // trusts the CA, presents nothing
	Stranger     *tls.Config // trusts the CA, presents a certificate of another CA
}

// NewTLS generates the certificates of a mutual-TLS test.
func NewTLS(tb testing.TB) TLSConfigs {
	tb.Helper()
	ca, caKey := newCA(tb, "dcsync test CA")
	other, otherKey := newCA(tb, "some other CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	server := leaf(tb, ca, caKey, "telecom", x509.ExtKeyUsageServerAuth)
	client := leaf(tb, ca, caKey, "unicom", x509.ExtKeyUsageClientAuth)
	stranger := leaf(tb, other, otherKey, "unicom", x509.ExtKeyUsageClientAuth)
	return TLSConfigs{
		Server: &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13},
		Client:       &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}, MinVersion: tls.VersionTLS13},
		ClientNoCert: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		Stranger:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{stranger}, MinVersion: tls.VersionTLS13},
	}
}

func newCA(tb testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, key
}

func leaf(tb testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
