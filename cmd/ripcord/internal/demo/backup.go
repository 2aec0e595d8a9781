package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Backup files are named orders-<UTC time>.sqlite; the time sorts as text,
// so the newest name is the newest backup. Milliseconds keep two backups
// in one second apart.
const (
	backupPrefix     = "orders-"
	backupSuffix     = ".sqlite"
	backupTimeLayout = "20060102T150405.000Z"
)

// BackupJob backs up the SQLite database db into dir now and then every
// `every` until ctx ends, keeping the newest `keep` backups. Each backup is
// a consistent copy (VACUUM INTO) written under a temporary name and
// renamed, so a watcher never sees half a file. A missing db is created
// with its orders table, so even the first backup is a real database.
func BackupJob(ctx context.Context, db, dir string, every time.Duration, keep int) error {
	if every <= 0 {
		return fmt.Errorf("starting the backup job: the interval must be positive, got %v", every)
	}
	if keep < 1 {
		return fmt.Errorf("starting the backup job: keep must be at least 1, got %d", keep)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("starting the backup job: creating %s: %w", dir, err)
	}
	conn, err := openOrders(ctx, db)
	if err != nil {
		return fmt.Errorf("starting the backup job: %w", err)
	}
	defer conn.Close()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := backupOnce(ctx, conn, dir, time.Now()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := pruneBackups(dir, keep); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// backupOnce writes one backup named after now.
func backupOnce(ctx context.Context, conn *sql.DB, dir string, now time.Time) error {
	name := backupPrefix + now.UTC().Format(backupTimeLayout) + backupSuffix
	// The dot-prefixed name matches no backup glob, so a half-written copy
	// is never taken for the newest backup.
	tmp := filepath.Join(dir, "."+name+".tmp")
	_ = os.Remove(tmp) // VACUUM INTO refuses an existing file
	if _, err := conn.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("backing up the orders database into %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("naming the backup %s: %w", name, err)
	}
	return nil
}

// pruneBackups removes all but the newest keep backups in dir.
func pruneBackups(dir string, keep int) error {
	names, err := backupNames(dir)
	if err != nil {
		return err
	}
	if len(names) <= keep {
		return nil
	}
	var errs []error
	for _, name := range names[:len(names)-keep] {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing old backup %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// backupNames lists the backups in dir, oldest first.
func backupNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing backups in %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, backupPrefix) && strings.HasSuffix(n, backupSuffix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}
