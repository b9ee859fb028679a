/**
 * The embedded metadata database (SQLite through better-sqlite3). Every module keeps its own tables in the same
 * file, `<data-dir>/faas.db`, and creates them with its own idempotent `migrate(db)`.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export type Db = Database.Database;

export function databasePath(dataDir: string): string {
  return path.join(dataDir, 'faas.db');
}

export function openDatabase(dataDir: string): Db {
  fs.mkdirSync(dataDir, { recursive: true });
  const db = new Database(databasePath(dataDir));
  // WAL lets the CLI read while a gateway writes; NORMAL sync is durable across process crashes in WAL mode.
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}

/**
 * A statement cache for one database: preparing costs more than running the small statements the modules use, so
 * each SQL text is prepared once.
 */
export function preparedStatements(db: Db): (sql: string) => Database.Statement {
  const cache = new Map<string, Database.Statement>();
  return (sql) => {
    let statement = cache.get(sql);
    if (!statement) {
      statement = db.prepare(sql);
      cache.set(sql, statement);
    }
    return statement;
  };
}
