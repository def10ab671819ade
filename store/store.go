// Package store implements app.Store on gorm, with MySQL/MariaDB for production and pure-Go
// SQLite for the demo, tests and small installations. It is the only package that imports gorm
// and the database drivers; everything it returns is expressed in app types and app errors.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/wecampus/wecampus/app"
)

// Drivers accepted in Config.Driver.
const (
	DriverMySQL  = "mysql"
	DriverSQLite = "sqlite"
)

// Config selects the database (the `database` section of config.yaml).
type Config struct {
	// Driver is "mysql" (MySQL or MariaDB) or "sqlite".
	Driver string `mapstructure:"driver"`
	// DSN is a go-sql-driver/mysql DSN for mysql, or a file path (or ":memory:") for sqlite.
	DSN string `mapstructure:"dsn"`
	// CallTimeout bounds one database call; 0 means DefaultCallTimeout.
	CallTimeout time.Duration `mapstructure:"-"`
}

// DB is the gorm-backed implementation of app.Store. A DB returned by Open is safe for
// concurrent use; the DB handed to a Tx callback is bound to that transaction.
type DB struct {
	gdb     *gorm.DB
	driver  string
	now     func() time.Time
	log     *slog.Logger
	timeout time.Duration // of one call (CallTimeout)
	inTx    bool
	idle    *time.Timer // in a Tx: ends it when no call starts for timeout
}

var _ app.Store = (*DB)(nil)

// Open connects to the database described by cfg and pings it. It does not migrate: call
// Migrate for that. now is the clock for the timestamps the store fills in (nil: time.Now); log
// receives gorm's errors and slow queries (nil: discarded).
func Open(ctx context.Context, cfg Config, now func() time.Time, log *slog.Logger) (*DB, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	var (
		sqlDB     *sql.DB
		dialector gorm.Dialector
		err       error
	)
	switch cfg.Driver {
	case DriverMySQL:
		sqlDB, err = openMySQL(ctx, cfg.DSN, log)
		if err == nil {
			dialector = mysql.New(mysql.Config{Conn: sqlDB})
		}
	case DriverSQLite:
		sqlDB, err = openSQLite(ctx, cfg.DSN)
		if err == nil {
			dialector = &sqlite.Dialector{Conn: sqlDB}
		}
	default:
		return nil, fmt.Errorf("store: open: unknown driver %q (want %s or %s)", cfg.Driver, DriverMySQL, DriverSQLite)
	}
	if err != nil {
		return nil, err
	}

	db := &DB{driver: cfg.Driver, now: now, log: log, timeout: cfg.CallTimeout}
	if db.timeout <= 0 {
		db.timeout = DefaultCallTimeout
	}
	db.gdb, err = gorm.Open(dialector, &gorm.Config{
		// ErrDuplicatedKey and friends work the same on both drivers.
		TranslateError: true,
		NowFunc:        db.timestamp,
		Logger:         newGormLogger(log),
		// Pinged above, with ctx.
		DisableAutomaticPing: true,
	})
	if err != nil {
		_ = sqlDB.Close() // the open error is the one worth reporting
		return nil, fmt.Errorf("store: open %s: %w", cfg.Driver, err)
	}
	return db, nil
}

// mysqlConfig parses dsn and applies the settings the store relies on, whatever the DSN says.
func mysqlConfig(dsn string) (*mysqldrv.Config, error) {
	mc, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		// The parser's message never contains the password.
		return nil, fmt.Errorf("store: open mysql: bad dsn: %w", err)
	}
	// Times are stored and read as UTC, whatever loc the DSN names (CONTRACT's example has
	// loc=Local); the session time zone matches so that server-side functions agree.
	mc.ParseTime = true
	mc.Loc = time.UTC
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["time_zone"] = "'+00:00'"
	// RowsAffected counts matched rows rather than changed rows, as SQLite does: the
	// conditional UPDATEs (IfStatus, claims, single-use codes) rely on it.
	mc.ClientFoundRows = true
	// Dial, read and write timeouts, unless the DSN sets its own: a database that stops
	// answering fails a call instead of hanging it (every call also has a context deadline).
	if mc.Timeout == 0 {
		mc.Timeout = dialTimeout
	}
	if mc.ReadTimeout == 0 {
		mc.ReadTimeout = readTimeout
	}
	if mc.WriteTimeout == 0 {
		mc.WriteTimeout = writeTimeout
	}
	return mc, nil
}

// openMySQL opens a pool on dsn (see mysqlConfig) and sizes it. The driver's own messages (a
// connection lost mid-call) go to log.
func openMySQL(ctx context.Context, dsn string, log *slog.Logger) (*sql.DB, error) {
	mc, err := mysqlConfig(dsn)
	if err != nil {
		return nil, err
	}
	mc.Logger = mysqlLogger{log}
	connector, err := mysqldrv.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("store: open mysql: %w", err)
	}
	sqlDB := sql.OpenDB(connector)
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close() // the ping error is the one worth reporting
		return nil, fmt.Errorf("store: ping mysql: %w", err)
	}

	// The server drops connections idle for wait_timeout seconds; retire ours well before.
	var waitTimeout int64
	if err := sqlDB.QueryRowContext(ctx, "SELECT @@wait_timeout").Scan(&waitTimeout); err != nil {
		_ = sqlDB.Close() // the query error is the one worth reporting
		return nil, fmt.Errorf("store: read wait_timeout: %w", err)
	}
	lifetime := min(5*time.Minute, time.Duration(waitTimeout)*time.Second/2)
	sqlDB.SetConnMaxLifetime(max(lifetime, time.Second))
	sqlDB.SetConnMaxIdleTime(max(lifetime, time.Second))
	sqlDB.SetMaxOpenConns(16)
	sqlDB.SetMaxIdleConns(4)
	return sqlDB, nil
}

// sqlitePragmas are appended to every SQLite DSN: foreign keys on, WAL so readers in other
// processes (the CLI) do not block the service, a busy timeout instead of SQLITE_BUSY, and
// BEGIN IMMEDIATE so a transaction takes the write lock up front rather than failing to upgrade.
const sqlitePragmas = "_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)" +
	"&_pragma=synchronous(NORMAL)&_txlock=immediate"

// openSQLite opens the SQLite file at path (or ":memory:") with a single connection.
func openSQLite(ctx context.Context, path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("store: open sqlite: dsn must be :memory: or a file path")
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	sqlDB, err := sql.Open(sqlite.DriverName, path+sep+sqlitePragmas)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	// SQLite has one writer at a time: a single connection serialises every statement in this
	// process (no SQLITE_BUSY between our own goroutines), and keeps a :memory: database alive
	// as long as the pool, since each connection would otherwise get its own empty database.
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetMaxIdleConns(1)
	sqlDB.SetConnMaxLifetime(0)
	sqlDB.SetConnMaxIdleTime(0)
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close() // the ping error is the one worth reporting
		return nil, fmt.Errorf("store: ping sqlite: %w", err)
	}
	return sqlDB, nil
}

// Close closes the connection pool.
func (db *DB) Close() error {
	if db.inTx {
		return errors.New("store: close: called inside a transaction")
	}
	sqlDB, err := db.gdb.DB()
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return sqlDB.Close()
}

// Ping checks that the database answers a query within the call timeout. Its error is plain
// (config check prints it), not an app error.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	if err := db.gdb.WithContext(ctx).Exec("SELECT 1").Error; err != nil {
		return wrapOp("ping", err)
	}
	return nil
}

// Tx runs fn in one transaction with a Store bound to it. Inside a transaction it simply runs fn
// in the current one. Each call in fn has the call timeout, and the transaction ends (rolled
// back) when no call starts within the call timeout: beginning it and every wait between its
// calls are bounded, while a transaction of many calls (a batch) may take longer in all.
func (db *DB) Tx(ctx context.Context, fn func(tx app.Store) error) error {
	if db.inTx {
		return fn(db)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := time.AfterFunc(db.timeout, cancel)
	defer idle.Stop()
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		idle.Reset(db.timeout)
		return fn(&DB{gdb: tx, driver: db.driver, now: db.now, log: db.log, timeout: db.timeout, inTx: true, idle: idle})
	})
	return storeErr("transaction", err, "", "")
}

// transaction runs fn atomically. Inside a Tx gorm turns it into a savepoint, so a method that
// fails half-way leaves nothing behind even when the caller goes on with its transaction.
//
// A transaction InnoDB picks as a deadlock victim is rolled back whole and run again (fn must
// therefore only touch the database). Such deadlocks are routine under races on one unique key:
// requests waiting to insert a key another transaction is deleting each get a shared lock, then
// all want the exclusive one. Inside a Tx the enclosing transaction is the one run again.
func (db *DB) transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	for attempt := 1; ; attempt++ {
		err := db.gdb.WithContext(ctx).Transaction(fn)
		if db.inTx || attempt > deadlockRetries || !deadlocked(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * deadlockBackoff):
		}
	}
}

// timestamp is the store's clock in storage form.
func (db *DB) timestamp() time.Time { return ts(db.now()) }

// ts normalises a time for storage and comparison: UTC with millisecond precision. MySQL keeps
// datetime(3) (rounding finer values) and SQLite compares times as text, so both engines need
// one canonical form for round trips and range queries to agree.
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// tsPtr is ts for nullable columns; nil and the zero time become NULL.
func tsPtr(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	v := ts(*t)
	return &v
}

// updateOnce is a single-use UPDATE of row id of model: it writes cols only while cond (with its
// args) holds (e.g. "used_at IS NULL"), so of two concurrent writers exactly one succeeds. When
// nothing matched it tells a missing row (gorm.ErrRecordNotFound) from one whose cond no longer
// holds (ECONFLICT with the message conflict). Run it in a transaction.
func updateOnce(tx *gorm.DB, model any, id int64, cond string, args []any, cols map[string]any, conflict string) error {
	res := tx.Model(model).Where("id = ?", id).Where(cond, args...).Updates(cols)
	if res.Error != nil || res.RowsAffected == 1 {
		return res.Error
	}
	var n int64
	if err := tx.Model(model).Where("id = ?", id).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return gorm.ErrRecordNotFound
	}
	return app.Errorf(app.ECONFLICT, "%s", conflict)
}

// toApps converts rows read from the database into app values with toApp.
func toApps[R, T any](rows []R, toApp func(*R) *T) []*T {
	out := make([]*T, len(rows))
	for i := range rows {
		out[i] = toApp(&rows[i])
	}
	return out
}

// storeErr translates err into the app error model: a missing row becomes ENOTFOUND with
// notFound and a unique-key violation ECONFLICT with conflict (when those messages are given);
// a database that cannot be reached or did not answer in time EUNAVAILABLE (unavailable); app
// errors pass through; anything else is wrapped with the operation name.
func storeErr(op string, err error, notFound, conflict string) error {
	var ae *app.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return err
	case notFound != "" && errors.Is(err, gorm.ErrRecordNotFound):
		return app.Errorf(app.ENOTFOUND, "%s", notFound)
	case conflict != "" && errors.Is(err, gorm.ErrDuplicatedKey):
		return app.Errorf(app.ECONFLICT, "%s", conflict)
	case unavailable(err):
		return unavailableErr(op, err)
	}
	return wrapOp(op, err)
}

// wrapOp wraps err with the operation name.
func wrapOp(op string, err error) error { return fmt.Errorf("store: %s: %w", op, err) }

// mysqlLogger routes the MySQL driver's messages to slog (instead of the standard logger).
type mysqlLogger struct{ log *slog.Logger }

// Print implements mysqldrv.Logger.
func (l mysqlLogger) Print(v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprint(v...)), "component", "mysql")
}

// gormLogger routes gorm's log to slog. Statements are logged with placeholders only, so member
// data (mobiles, names) never reaches the log.
type gormLogger struct{ logger.Interface }

func newGormLogger(log *slog.Logger) logger.Interface {
	return gormLogger{logger.NewSlogLogger(log.With("component", "gorm"), logger.Config{
		SlowThreshold:             200 * time.Millisecond,
		IgnoreRecordNotFoundError: true,
		ParameterizedQueries:      true,
		LogLevel:                  logger.Warn,
	})}
}

// LogMode implements logger.Interface.
func (l gormLogger) LogMode(level logger.LogLevel) logger.Interface {
	return gormLogger{l.Interface.LogMode(level)}
}

// Trace implements logger.Interface. A unique-key violation is an expected outcome (it becomes
// ECONFLICT or a de-duplicated no-op), not a fault, so it is not logged as an error.
func (l gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		err = nil
	}
	l.Interface.Trace(ctx, begin, fc, err)
}

// ParamsFilter implements gorm.ParamsFilter; the wrapped logger's own is not promoted through
// the interface, and without it gorm would inline the values into the logged statement.
func (l gormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}
