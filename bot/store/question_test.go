package store_test

import (
	"testing"

	"github.com/difybot/difybot/bot/store/storetest"
)

func TestQuestionContract(t *testing.T) {
	eachBackend(t, func(t *testing.T, d testDB) { storetest.QuestionContract(t, d.Open(t)) })
}
