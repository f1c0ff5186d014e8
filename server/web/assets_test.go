package web

import (
	"testing"
	"testing/fstest"

	"github.com/gatehouse-idp/gatehouse/static"
)

// Every file we ship gets a real Content-Type from the fixed table: with
// X-Content-Type-Options: nosniff a stylesheet served as
// application/octet-stream would be ignored by the browser.
func TestShippedAssetsHaveKnownContentTypes(t *testing.T) {
	a, err := loadAssets(static.FS, []byte(":root{}"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.files) < 2 {
		t.Fatalf("only %d assets loaded", len(a.files))
	}
	for name, f := range a.files {
		if f.contentType == "application/octet-stream" {
			t.Errorf("%s: no Content-Type for its extension in assetTypes", name)
		}
	}
}

func TestUnknownAssetExtensionIsOctetStream(t *testing.T) {
	a, err := loadAssets(fstest.MapFS{"x.bin": {Data: []byte{1}}, "y": {Data: []byte{2}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x.bin", "y"} {
		if ct := a.files[name].contentType; ct != "application/octet-stream" {
			t.Errorf("%s: Content-Type %q, want application/octet-stream", name, ct)
		}
	}
	if ct := a.files[ThemeCSS].contentType; ct != "text/css; charset=utf-8" {
		t.Errorf("theme: %q", ct)
	}
}
