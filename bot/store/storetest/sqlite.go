package storetest

import (
	"database/sql"

	_ "modernc.org/sqlite" // The same driver the store uses.
)

func openSQLite(path string) (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
}
