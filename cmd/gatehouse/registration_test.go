package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRegistrationTokens(t *testing.T) {
	c := newCLI(t).migrated()
	var tok registrationTokenView
	out := c.ok("", "clients", "registration-token", "create", "--uses", "3", "--expires-in", "72h", "--description", "partner", "-o", "json")
	if err := json.Unmarshal([]byte(out), &tok); err != nil {
		t.Fatalf("create output is not JSON: %v\n%s", err, out)
	}
	// 32 random bytes, base64url; only its MAC is stored, as the ID.
	if len(tok.Token) != 43 || len(tok.ID) != 64 || tok.UsesLeft != 3 || tok.Description != "partner" ||
		tok.ExpiresAt.Sub(tok.CreatedAt) != 72*time.Hour {
		t.Errorf("created: %+v", tok)
	}
	var unl registrationTokenView
	json.Unmarshal([]byte(c.ok("", "clients", "registration-token", "create", "--unlimited", "--expires-in", "0", "-o", "json")), &unl)
	if unl.UsesLeft != -1 || !unl.ExpiresAt.IsZero() {
		t.Errorf("unlimited, never expiring: %+v", unl)
	}

	list := c.ok("", "clients", "registration-token", "list")
	if !strings.Contains(list, tok.ID) || !strings.Contains(list, "unlimited") || !strings.Contains(list, "partner") || strings.Contains(list, tok.Token) {
		t.Errorf("list: %q", list)
	}
	var views []registrationTokenView
	json.Unmarshal([]byte(c.ok("", "clients", "registration-token", "list", "-o", "json")), &views)
	if len(views) != 2 || views[0].Token != "" || views[1].Token != "" {
		t.Errorf("list -o json: %+v", views)
	}

	c.fails("uses must be at least 1", "", "clients", "registration-token", "create", "--uses", "0")
	c.fails("--uses and --unlimited exclude each other", "", "clients", "registration-token", "create", "--uses", "2", "--unlimited")
	c.ok("", "clients", "registration-token", "delete", tok.ID)
	c.fails("not found", "", "clients", "registration-token", "delete", tok.ID)
	if list := c.ok("", "clients", "registration-token", "list"); strings.Contains(list, tok.ID) || !strings.Contains(list, unl.ID) {
		t.Errorf("list after delete: %q", list)
	}
}
