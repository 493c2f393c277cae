/**
 * The relay store's tables, as versioned migrations applied at start (store-sqlite.ts and
 * store-postgres.ts). One list per dialect, same tables and columns; a new version is appended,
 * never edited. Times are ms since epoch (BIGINT).
 */

/** SQLite migrations, index = version - 1. */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `CREATE TABLE events (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     delivery_id TEXT NOT NULL UNIQUE,
     dedupe_key TEXT NOT NULL UNIQUE,
     session_id TEXT NOT NULL,
     org_id TEXT NOT NULL,
     action TEXT NOT NULL,
     payload TEXT NOT NULL,
     state TEXT NOT NULL DEFAULT 'queued',
     worker TEXT,
     lease_until INTEGER,
     attempts INTEGER NOT NULL DEFAULT 0,
     received_at INTEGER NOT NULL,
     acked_at INTEGER
   );
   CREATE INDEX events_open ON events (session_id, seq) WHERE state <> 'acked';
   CREATE INDEX events_state ON events (state, seq);
   CREATE TABLE sessions (session_id TEXT PRIMARY KEY, worker TEXT NOT NULL, held_until INTEGER NOT NULL);
   CREATE TABLE installs (org_id TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at INTEGER NOT NULL);
   CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, org_id TEXT, detail TEXT NOT NULL, at INTEGER NOT NULL);
   CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);`,
]

/** PostgreSQL migrations, index = version - 1 (the same tables as SQLITE_MIGRATIONS). */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  `CREATE TABLE events (
     seq BIGSERIAL PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     delivery_id TEXT NOT NULL UNIQUE,
     dedupe_key TEXT NOT NULL UNIQUE,
     session_id TEXT NOT NULL,
     org_id TEXT NOT NULL,
     action TEXT NOT NULL,
     payload TEXT NOT NULL,
     state TEXT NOT NULL DEFAULT 'queued',
     worker TEXT,
     lease_until BIGINT,
     attempts INTEGER NOT NULL DEFAULT 0,
     received_at BIGINT NOT NULL,
     acked_at BIGINT
   );
   CREATE INDEX events_open ON events (session_id, seq) WHERE state <> 'acked';
   CREATE INDEX events_state ON events (state, seq);
   CREATE TABLE sessions (session_id TEXT PRIMARY KEY, worker TEXT NOT NULL, held_until BIGINT NOT NULL);
   CREATE TABLE installs (org_id TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at BIGINT NOT NULL);
   CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, org_id TEXT, detail TEXT NOT NULL, at BIGINT NOT NULL);
   CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);`,
]
