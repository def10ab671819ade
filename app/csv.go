package app

import "strings"

// CSVCell makes a value safe as a spreadsheet cell: a value starting with =, +, -, @, a tab or a
// carriage return would be read as a formula by Excel or WPS (CSV injection), so it gets a
// leading apostrophe, which spreadsheets show as text and do not evaluate.
func CSVCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
