package store_test

import (
	"testing"

	"github.com/difybot/difybot/bot/store/storetest"
)

func TestPendingIsTakenOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) { storetest.PendingContract(t, d.Open(t)) })
}
