package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/wecampus/wecampus/app"
)

// DefaultCallTimeout bounds one database call (a statement, or a whole transaction) when
// Config.CallTimeout is 0: a request never waits longer than this for a database that does not
// answer, so a member page or a callback (WeCom gives it 5 s) can still answer 503 in time.
const DefaultCallTimeout = 3 * time.Second

// bulkTimeout bounds a call that reads or writes many rows: a listing, one purge batch.
const bulkTimeout = time.Minute

// Transport timeouts set on a MySQL DSN that does not name its own. They bound what no context
// reaches (a COMMIT, a connection check); a statement longer than readTimeout would fail, and
// none is: purges work in batches, listings stream.
const (
	dialTimeout  = 3 * time.Second
	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
)

// msgUnavailable is shown to members when the database does not answer.
const msgUnavailable = "系统繁忙，请稍后再试。"

// deadline returns ctx bounded by the store's call timeout (and, in a Tx, keeps the transaction
// from ending idle while the call runs).
func (db *DB) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return db.bounded(ctx, db.timeout)
}

// bulkDeadline returns ctx bounded for a call over many rows.
func (db *DB) bulkDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return db.bounded(ctx, max(bulkTimeout, db.timeout))
}

func (db *DB) bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d)
	if db.idle == nil {
		return ctx, cancel
	}
	db.idle.Reset(d) // the call runs: not idle
	return ctx, func() {
		cancel()
		db.idle.Reset(db.timeout) // idle from the end of the call
	}
}

// unavailableMySQL are the server errors that say "not now" rather than "never": too many
// connections, shutdown, a lock wait or statement timeout, a deadlock victim, a killed
// connection, read-only during a failover.
var unavailableMySQL = map[uint16]bool{
	1040: true, // ER_CON_COUNT_ERROR
	1053: true, // ER_SERVER_SHUTDOWN
	1205: true, // ER_LOCK_WAIT_TIMEOUT
	1213: true, // ER_LOCK_DEADLOCK
	1290: true, // ER_OPTION_PREVENTS_STATEMENT (--read-only)
	1317: true, // ER_QUERY_INTERRUPTED
	1836: true, // ER_READ_ONLY_MODE
	1927: true, // ER_CONNECTION_KILLED (MariaDB)
	1969: true, // ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
	3024: true, // ER_QUERY_TIMEOUT (MySQL max_execution_time)
}

// A deadlock victim's transaction is run again up to deadlockRetries times, after attempt ×
// deadlockBackoff.
const (
	deadlockRetries = 5
	deadlockBackoff = 5 * time.Millisecond
)

// deadlocked reports whether err is InnoDB's deadlock error (the transaction was rolled back).
func deadlocked(err error) bool {
	var me *mysqldrv.MySQLError
	return errors.As(err, &me) && me.Number == 1213
}

// SQLite result codes (the primary code is the low byte of an extended one) that mean another
// connection holds the database for now.
const (
	sqliteBusy   = 5
	sqliteLocked = 6
)

// unavailable reports whether err means the database could not be reached or did not answer in
// time, as opposed to a statement it refused: a retry later may succeed, and the member sees a
// 503. It covers dial failures (refused, unreachable, timeout), connections lost mid-call, our
// own deadlines, a pool already closed, and the server errors of unavailableMySQL.
func unavailable(err error) bool {
	var (
		ne  net.Error
		me  *mysqldrv.MySQLError
		sqe interface{ Code() int }
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, mysqldrv.ErrInvalidConn),
		errors.Is(err, sql.ErrConnDone), errors.Is(err, sql.ErrTxDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &ne):
		return true
	case errors.As(err, &me):
		return unavailableMySQL[me.Number]
	case errors.As(err, &sqe):
		c := sqe.Code() & 0xff
		return c == sqliteBusy || c == sqliteLocked
	}
	// database/sql does not export this one: the pool was closed (shutdown, or a test).
	return strings.Contains(err.Error(), "sql: database is closed")
}

// unavailableErr wraps err, which unavailable reported, as EUNAVAILABLE for op.
func unavailableErr(op string, err error) error {
	return app.Wrap(app.EUNAVAILABLE, wrapOp(op, err), msgUnavailable)
}
