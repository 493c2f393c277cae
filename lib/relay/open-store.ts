/** Open the store the relay's settings name (SQLite by default, PostgreSQL for several instances). */
import { FactoryError } from '../errors.ts'
import { redactUrl, type RelaySettings } from './settings.ts'
import type { RelayStore } from './store.ts'
import { openSqliteStore } from './store-sqlite.ts'

/** The relay store for `queue`, migrated and ready, or a FactoryError naming the store and the fix. */
export async function openStore(queue: RelaySettings['queue']): Promise<RelayStore> {
  try {
    if (queue.kind === 'sqlite') return openSqliteStore(queue.path)
    return await (await import('./store-postgres.ts')).openPostgresStore(queue.url)
  } catch (e) {
    const where = queue.kind === 'sqlite' ? queue.path : redactUrl(queue.url)
    throw new FactoryError('relay_store_failed', `cannot open the relay store at ${where}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    })
  }
}
