package difytest

import (
	"net/http"
	"strconv"
)

// info answers GET /v1/info (§5.3). 0.6 sent only name and description.
func (s *Sim) info(w http.ResponseWriter, r *http.Request, c *call) {
	name, desc := "Photo Describer", "Describes the photo you send and answers your question about it."
	switch c.mode {
	case "workflow":
	case "agent":
		name, desc = "Photo Agent", "An agent that looks at the photos you send."
	default:
		name, desc = "Photo Chat", "Chats about the photos you send."
	}
	if c.sc.dialect == v06 {
		writeJSON(w, v06, http.StatusOK, obj{{"name", name}, {"description", desc}})
		return
	}
	writeJSON(w, v1, http.StatusOK, obj{{"name", name}, {"description", desc}, {"tags", []string{}},
		{"mode", c.mode}, {"author_name", "difybot"}})
}

// parameters answers GET /v1/parameters (§5.3) with the shape's start form. The default shape has a paragraph
// variable query and a file variable photo that takes images; chat apps get the query from the message instead,
// and 0.6 had no file variables at all.
func (s *Sim) parameters(w http.ResponseWriter, r *http.Request, c *call) {
	if rp := c.sc.fault(atEndpoint, c.route, 0); rp != nil {
		rp.write(w, r, c.sc.dialect)
		return
	}
	d := c.sc.dialect
	form := []obj{}
	for _, f := range c.sh.formFor(c.mode, d) {
		form = append(form, c.sh.render(f))
	}
	methods := []string{"local_file", "remote_url"}
	fileUpload := obj{{"image", obj{{"enabled", true}, {"number_limits", 3}, {"detail", "high"}, {"transfer_methods", methods}}}}
	imageMB := s.imageLimit() >> 20
	system := obj{{"image_file_size_limit", strconv.FormatInt(imageMB, 10)}}
	if d == v1 {
		fileUpload = append(obj{{"enabled", true}, {"allowed_file_types", []string{"image"}},
			{"allowed_file_extensions", []string{}}, {"allowed_file_upload_methods", methods}, {"number_limits", 3}},
			fileUpload...)
		system = obj{{"file_size_limit", 15}, {"image_file_size_limit", imageMB}, {"audio_file_size_limit", 50},
			{"video_file_size_limit", 100}, {"workflow_file_upload_limit", 10}}
	}
	off := obj{{"enabled", false}}
	writeJSON(w, d, http.StatusOK, obj{
		{"opening_statement", c.sh.opening},
		{"suggested_questions", append([]string{}, c.sh.suggested...)},
		{"suggested_questions_after_answer", off},
		{"speech_to_text", off},
		{"text_to_speech", obj{{"enabled", false}, {"language", ""}, {"voice", ""}}},
		{"retriever_resource", off},
		{"annotation_reply", off},
		{"more_like_this", off},
		{"user_input_form", form},
		{"sensitive_word_avoidance", off},
		{"file_upload", fileUpload},
		{"system_parameters", system},
	})
}
