// Package sqlitedsn builds the data source names with which the module
// opens its SQLite databases (the driver modernc.org/sqlite, imported by
// the caller), so that the agent's state and the manager's job store get
// the same settings:
//
//   - WAL journal: readers do not wait for the writer;
//   - synchronous NORMAL: a commit survives a crash of the process, and a
//     power loss can lose only the last commits, never corrupt the file;
//     each caller says why that is enough for what it records;
//   - foreign keys enforced;
//   - write transactions begin IMMEDIATE, so that two writers wait for
//     each other at the start rather than deadlock upgrading their locks;
//   - a 30 s busy timeout.
package sqlitedsn

import "net/url"

// ReadWrite returns the data source name of the database file at path,
// opened for reading and writing with the settings above. With
// mustExist, SQLite refuses to open a file that does not exist rather than
// create it (mode=rw): a connection opened after the file was deleted then
// fails instead of starting an empty database in its place.
func ReadWrite(path string, mustExist bool) string {
	q := url.Values{}
	if mustExist {
		q.Set("mode", "rw")
	}
	q.Add("_pragma", "busy_timeout(30000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// ReadOnly returns the data source name of the database file at path,
// opened read-only (mode=ro), with the busy timeout: for checks that must
// leave the file as they found it.
func ReadOnly(path string) string {
	return "file:" + path + "?mode=ro&_pragma=busy_timeout(30000)"
}
