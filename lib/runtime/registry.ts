/**
 * The runtime providers agents.yaml may name. A new provider is one file exporting a ProviderEntry
 * and one entry in RUNTIME_PROVIDERS; routing, the tracker and the engines never change.
 */
import { z } from '../zod.ts'
import { FactoryError } from '../errors.ts'
import { commandProvider } from './command.ts'
import { noneProvider } from './none.ts'
import type { ProviderEntry, RuntimeConfig, RuntimeProvider } from './types.ts'

export const RUNTIME_PROVIDERS: readonly ProviderEntry[] = [noneProvider, commandProvider] as ProviderEntry[]

/** The `runtime:` schema for `entries`: one strict object per provider, told apart by `provider` (default none). */
export function runtimeSchemaOf(entries: readonly ProviderEntry[]) {
  const options = entries.map((e) => e.schema) as unknown as [z.ZodObject<{ provider: z.ZodLiteral<string> }>]
  return z.discriminatedUnion('provider', options).default({ provider: 'none' }) as unknown as z.ZodType<
    RuntimeConfig,
    RuntimeConfig | undefined
  >
}

/** The provider an agent's `runtime:` names, from `registry` (tests pass their own). */
export function providerFor(config: RuntimeConfig, registry: readonly ProviderEntry[] = RUNTIME_PROVIDERS): RuntimeProvider {
  const entry = registry.find((e) => e.name === config.provider)
  if (!entry)
    throw new FactoryError('config_invalid', `runtime.provider: unknown provider "${config.provider}"`, {
      fix: `use one of: ${registry.map((e) => e.name).join(', ')}`,
    })
  return entry.create(entry.schema.parse(config))
}
