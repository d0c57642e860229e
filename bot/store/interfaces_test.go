package store_test

import (
	"github.com/difybot/difybot/bot/admin"
	"github.com/difybot/difybot/bot/store"
)

// The store serves the admin API as well as the pipeline (store.go checks bot.Store). The check lives in a test
// so that the store itself does not import the admin package.
var _ admin.Store = (*store.Store)(nil)
