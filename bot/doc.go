// Package bot is difybot's domain: messages, the pipeline that runs them through Dify, and the diagnosis of what went wrong.
//
// # Adding a diagnosis code
//
//  1. Add the Code constant in diagnosis.go, in DESIGN.md's order; a released code never changes.
//  2. Add the rule that recognises the failure in rules.go, and a case for it in TestDiagnose.
//  3. Add its entry at the same place in catalogue_dify.go (dify_* codes) or catalogue_bot.go: a title, the en and
//     ja user texts, and the admin's causes and checks.
//  4. Add it to designCodes in diagnosis_test.go: TestCodesMatchDesign compares that table with Codes(), which is
//     read from the catalogue, so a code without an entry fails there; TestCatalogueComplete checks its texts.
//     A dify_* code also goes in diagnosisCodes in dify/difytest/scenarios_test.go.
//  5. No doc lists every code; update the count in README.md ("27 in all") and, for a Dify answer, the table
//     under "Dify answers 401, 404, 429, 502, 504" in docs/operations.md.
package bot
