package themes

import "math"

// Luminance is WCAG 2.x relative luminance of a "#rrggbb" colour.
func Luminance(hex string) (float64, error) {
	c, err := ParseHex(hex)
	if err != nil {
		return 0, err
	}
	lin := func(v uint8) float64 {
		s := float64(v) / 255
		if s <= 0.04045 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c[0]) + 0.7152*lin(c[1]) + 0.0722*lin(c[2]), nil
}

// Contrast is the WCAG 2.x contrast ratio of two colours, 1..21.
func Contrast(a, b string) (float64, error) {
	la, err := Luminance(a)
	if err != nil {
		return 0, err
	}
	lb, err := Luminance(b)
	if err != nil {
		return 0, err
	}
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05), nil
}
