package respond

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatehouse-idp/gatehouse/server/requestid"
)

func TestErrorCarriesCodeDescriptionAndRequestID(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r = r.WithContext(requestid.NewContext(r.Context(), "req-1"))
	w := httptest.NewRecorder()
	w.Header().Set("Pragma", "no-cache")
	Error(w, r, http.StatusBadRequest, "invalid_request", "redirect_uris must not be empty")

	if w.Code != http.StatusBadRequest {
		t.Errorf("status %d, want 400", w.Code)
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	var got ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := ErrorBody{Error: "invalid_request", ErrorDescription: "redirect_uris must not be empty", RequestID: "req-1"}
	if got != want {
		t.Errorf("body %+v, want %+v", got, want)
	}
}

func TestJSONKeepsURLsReadable(t *testing.T) {
	w := httptest.NewRecorder()
	JSON(w, http.StatusOK, map[string]string{"u": "https://rp.example.com/cb?a=1&b=2"})
	if got, want := w.Body.String(), `{"u":"https://rp.example.com/cb?a=1&b=2"}`+"\n"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
}
