package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DefaultAccentColor is used when the branding sets none.
const DefaultAccentColor = "#1f5fbf"

// parseHexColor accepts #rgb or #rrggbb only. Anything else is refused: the
// value is written into a stylesheet, so free text could inject CSS.
func parseHexColor(s string) (r, g, b uint8, err error) {
	if !strings.HasPrefix(s, "#") || (len(s) != 4 && len(s) != 7) {
		return 0, 0, 0, fmt.Errorf("colour %q: want #rgb or #rrggbb", s)
	}
	hex := s[1:]
	if len(hex) == 3 {
		hex = string([]byte{hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
	}
	v, err := strconv.ParseUint(hex, 16, 32)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("colour %q: want #rgb or #rrggbb", s)
	}
	return uint8(v >> 16), uint8(v >> 8), uint8(v), nil
}

// relativeLuminance follows WCAG 2.1's definition.
func relativeLuminance(r, g, b uint8) float64 {
	lin := func(c uint8) float64 {
		v := float64(c) / 255
		if v <= 0.03928 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(r) + 0.7152*lin(g) + 0.0722*lin(b)
}

// contrastRatio is WCAG 2.1's (L1 + 0.05) / (L2 + 0.05) with L1 the lighter.
func contrastRatio(l1, l2 float64) float64 {
	if l1 < l2 {
		l1, l2 = l2, l1
	}
	return (l1 + 0.05) / (l2 + 0.05)
}

// minContrast is WCAG 2.1's AA ratio for normal text (SC 1.4.3).
const minContrast = 4.5

// themeCSS renders the generated stylesheet. The text on accent-coloured
// buttons is white when that reaches WCAG AA against the accent (the usual
// look), else black or white, whichever contrasts more, so any configured
// colour stays readable.
func themeCSS(accent string) ([]byte, error) {
	if accent == "" {
		accent = DefaultAccentColor
	}
	r, g, b, err := parseHexColor(accent)
	if err != nil {
		return nil, err
	}
	l := relativeLuminance(r, g, b)
	contrast := "#ffffff"
	if white, black := contrastRatio(l, 1), contrastRatio(l, 0); white < minContrast && black > white {
		contrast = "#000000"
	}
	css := fmt.Sprintf(":root {\n  --accent: #%02x%02x%02x;\n  --accent-contrast: %s;\n}\n", r, g, b, contrast)
	return []byte(css), nil
}
