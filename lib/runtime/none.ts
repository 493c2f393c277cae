/** The `none` runtime provider: the engine works in the worktree alone; nothing to prepare or tear down. */
import { z } from '../zod.ts'
import type { ProviderEntry } from './types.ts'

const schema = z.strictObject({ provider: z.literal('none') })

export const noneProvider: ProviderEntry<z.infer<typeof schema>> = {
  name: 'none',
  schema,
  create: () => ({
    name: 'none',
    timeoutMs: 0,
    prepare: async () => ({ env: {}, urls: [] }),
    teardown: async () => {},
  }),
}
