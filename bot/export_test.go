package bot

// MakePreview is makePreview, for the external tests.
var MakePreview = makePreview

// StripThink and OutputTexts are the answer's formatting, for the external tests.
var (
	StripThink  = stripThink
	OutputTexts = outputTexts
)
