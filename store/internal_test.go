package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/wecampus/wecampus/app"
)

// TestMySQLTimeouts: dial, read and write timeouts are set on a DSN that has none, and a DSN's
// own are kept.
func TestMySQLTimeouts(t *testing.T) {
	mc, err := mysqlConfig("u:p@tcp(db:3306)/w")
	if err != nil {
		t.Fatal(err)
	}
	if mc.Timeout != dialTimeout || mc.ReadTimeout != readTimeout || mc.WriteTimeout != writeTimeout {
		t.Fatalf("defaults: timeout %v read %v write %v", mc.Timeout, mc.ReadTimeout, mc.WriteTimeout)
	}
	mc, err = mysqlConfig("u:p@tcp(db:3306)/w?timeout=1s&readTimeout=7s&writeTimeout=9s")
	if err != nil {
		t.Fatal(err)
	}
	if mc.Timeout != time.Second || mc.ReadTimeout != 7*time.Second || mc.WriteTimeout != 9*time.Second {
		t.Fatalf("DSN's own: timeout %v read %v write %v", mc.Timeout, mc.ReadTimeout, mc.WriteTimeout)
	}
}

// sqliteErr is an error with a SQLite result code, as the driver returns.
type sqliteErr int

func (e sqliteErr) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e sqliteErr) Code() int     { return int(e) }

// TestStoreErrUnavailable: failures to reach the database, or to get its answer in time, are
// EUNAVAILABLE; refusals of a statement are not.
func TestStoreErrUnavailable(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{dial, app.EUNAVAILABLE},
		{fmt.Errorf("begin: %w", context.DeadlineExceeded), app.EUNAVAILABLE},
		{context.Canceled, app.EUNAVAILABLE},
		{mysqldrv.ErrInvalidConn, app.EUNAVAILABLE},
		{io.ErrUnexpectedEOF, app.EUNAVAILABLE},
		{syscall.ECONNRESET, app.EUNAVAILABLE},
		{&mysqldrv.MySQLError{Number: 1213, Message: "Deadlock found"}, app.EUNAVAILABLE},
		{&mysqldrv.MySQLError{Number: 1040, Message: "Too many connections"}, app.EUNAVAILABLE},
		{&mysqldrv.MySQLError{Number: 1927, Message: "Connection was killed"}, app.EUNAVAILABLE},
		{sqliteErr(5), app.EUNAVAILABLE},
		{sqliteErr(5 | 3<<8), app.EUNAVAILABLE}, // SQLITE_BUSY_SNAPSHOT
		{errors.New("sql: database is closed"), app.EUNAVAILABLE},
		{&mysqldrv.MySQLError{Number: 1054, Message: "Unknown column"}, app.EINTERNAL},
		{sqliteErr(1), app.EINTERNAL},
		{errors.New("boom"), app.EINTERNAL},
	} {
		err := storeErr("op", tc.err, "", "")
		if got := app.ErrorCode(err); got != tc.want {
			t.Errorf("%v: code %q, want %q", tc.err, got, tc.want)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%v: cause lost: %v", tc.err, err)
		}
	}
}
