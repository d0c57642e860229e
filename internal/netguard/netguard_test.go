package netguard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for addr, public := range map[string]bool{
		"93.184.215.14:443": true, "[2606:4700::6810:84e5]:443": true,
		"127.0.0.1:80": false, "10.0.0.5:80": false, "192.168.1.1:80": false, "169.254.169.254:80": false,
		"100.64.0.1:80": false, "[::1]:80": false, "[fd00::1]:80": false, "[::ffff:127.0.0.1]:80": false,
		"[64:ff9b::a00:1]:80": false, "0.0.0.0:80": false,
	} {
		if err := Check(addr); (err == nil) != public {
			t.Errorf("Check(%s) = %v, want public %v", addr, err, public)
		}
	}
}

func TestClientRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	defer srv.Close()
	_, err := Client(Control).Get(srv.URL)
	if err == nil || !strings.Contains(err.Error(), "not a public address") {
		t.Fatalf("GET of a loopback server: %v, want refused", err)
	}
}
