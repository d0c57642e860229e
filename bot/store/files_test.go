package store_test

import (
	"bytes"
	"testing"

	"github.com/difybot/difybot/bot/store/storetest"
)

func TestOutputFiles(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) { storetest.OutputFilesContract(t, d.Open(t)) })
}

// Two replicas on one database sign with the same key, made by whichever asked first, and a restart keeps it.
func TestSigningKeyIsSharedByReplicas(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) {
		a, b := d.Open(t), d.Open(t)
		ka, err := a.SigningKey(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		kb, err := b.SigningKey(t.Context())
		if err != nil || !bytes.Equal(ka, kb) {
			t.Errorf("replicas have different keys (%v)", err)
		}
		a.Close()
		kc, err := d.Open(t).SigningKey(t.Context())
		if err != nil || !bytes.Equal(ka, kc) {
			t.Errorf("a restart made a new key (%v)", err)
		}
	})
}
