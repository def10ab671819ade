package app

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"
)

// CSVCell makes a value safe as a spreadsheet cell: a value starting with =, +, -, @, a tab or a
// carriage return would be read as a formula by Excel or WPS (CSV injection), so it gets a
// leading apostrophe, which spreadsheets show as text and do not evaluate.
func CSVCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// BindingFields are the field names of `binding get --json` and the header of
// `binding list --csv` and of the console's CSV export (CONTRACT §1), in that order.
var BindingFields = []string{"number", "userid", "mobile", "name", "type", "department", "status", "created_at", "updated_at"}

// BindingRecord returns the values of BindingFields for b; times are RFC 3339 in UTC.
func BindingRecord(b *Binding) []string {
	return []string{b.Number, b.UserID, b.Mobile, b.Name, b.Type, strconv.FormatInt(b.Department, 10),
		string(b.Status), rfc3339(b.CreatedAt), rfc3339(b.UpdatedAt)}
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// WriteBindingsCSV writes the header row and one row per binding, every cell through CSVCell:
// the CSV of `binding list --csv` and of the console's export.
func WriteBindingsCSV(w io.Writer, list []*Binding) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(BindingFields); err != nil {
		return err
	}
	row := make([]string, len(BindingFields))
	for _, b := range list {
		for i, v := range BindingRecord(b) {
			row[i] = CSVCell(v)
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
