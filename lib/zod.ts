/**
 * zod, configured once for every schema of the factory: every module imports `z` from here, never
 * from 'zod' directly, so this runs before any schema is built. jitless: zod's JIT compiles each
 * object schema with `new Function` on its first parse, which pays off after thousands of parses;
 * a factory process (a cron `start --once`, a run) parses each schema a handful of times, and the
 * compiling cost an idle tick ~5 ms.
 */
import { z } from 'zod'

z.config({ jitless: true })

export { z }
