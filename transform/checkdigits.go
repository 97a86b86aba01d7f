package transform

// IBANMod97 is the ISO 13616 remainder of s (digits and upper-case
// letters, letters counting as 10 to 35): a valid IBAN, rearranged with
// its first four characters at the end, gives 1.
func IBANMod97(s string) int {
	r := 0
	for _, c := range []byte(s) {
		if c >= 'A' && c <= 'Z' {
			r = (r*100 + int(c-'A'+10)) % 97
		} else {
			r = (r*10 + int(c-'0')) % 97
		}
	}
	return r
}

// LuhnValid reports whether the digits of s end with a valid Luhn check
// digit (card numbers). s must hold digits only.
func LuhnValid(s string) bool {
	sum := 0
	for i := range len(s) {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return len(s) > 0 && sum%10 == 0
}
