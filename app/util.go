package app

import (
	"errors"
	"strconv"
)

func itoa(i int) string { return strconv.Itoa(i) }

func asWeCom(err error, target **WeComError) bool { return errors.As(err, target) }
