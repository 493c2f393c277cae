/**
 * A fake Langfuse ingestion endpoint on 127.0.0.1, faithful where the factory depends on it:
 * `POST /api/public/ingestion` with Basic auth (401 otherwise), each event of `batch` checked
 * against the documented shapes (Langfuse's fern definition ingestion.yml and its server's zod
 * schemas), strictly: an unknown key is an error too, so a typo fails the test. Like Langfuse it
 * answers 207 `{ successes, errors }`, an invalid event listed in `errors` with status 400.
 * `mode`: 'normal', 'fail' (500 to everything), 'refuse' (207 with every event in errors).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { z } from '../../lib/zod.ts'

const id = z
  .string()
  .min(1)
  .max(800)
  .refine((s) => !s.includes('\r'), 'no carriage return')
const dateTime = z.iso.datetime({ offset: true })
const level = z.enum(['DEBUG', 'DEFAULT', 'WARNING', 'ERROR'])
const environment = z
  .string()
  .max(40)
  .regex(/^(?!langfuse)[a-z0-9-_]+$/)

const observation = {
  id,
  traceId: id.optional(),
  name: z.string().optional(),
  startTime: dateTime.optional(),
  endTime: dateTime.optional(),
  metadata: z.unknown().optional(),
  input: z.unknown().optional(),
  output: z.unknown().optional(),
  level: level.optional(),
  statusMessage: z.string().optional(),
  parentObservationId: z.string().optional(),
  version: z.string().optional(),
  environment: environment.optional(),
}

const traceBody = z.strictObject({
  id: id.optional(),
  timestamp: dateTime.optional(),
  name: z.string().max(1000).optional(),
  userId: z.string().optional(),
  input: z.unknown().optional(),
  output: z.unknown().optional(),
  sessionId: z.string().optional(),
  release: z.string().optional(),
  version: z.string().optional(),
  metadata: z.unknown().optional(),
  tags: z.array(z.string()).optional(),
  environment: environment.optional(),
  public: z.boolean().optional(),
})

const generationBody = z.strictObject({
  ...observation,
  completionStartTime: dateTime.optional(),
  model: z.string().optional(),
  modelParameters: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  usageDetails: z.record(z.string(), z.int().nonnegative()).optional(),
  costDetails: z.record(z.string(), z.number().nonnegative()).optional(),
  promptName: z.string().optional(),
  promptVersion: z.int().optional(),
})

const envelope = { id, timestamp: dateTime, metadata: z.unknown().optional() }

/** One ingestion event as Langfuse accepts it (the types the factory sends). */
export const ingestionEventSchema = z.discriminatedUnion('type', [
  z.strictObject({ ...envelope, type: z.literal('trace-create'), body: traceBody }),
  z.strictObject({ ...envelope, type: z.literal('span-create'), body: z.strictObject(observation) }),
  z.strictObject({ ...envelope, type: z.literal('generation-create'), body: generationBody }),
])
export type RecordedEvent = z.infer<typeof ingestionEventSchema>

export interface LangfuseRequest {
  authorization?: string
  /** The request body as sent (for leak checks: every byte). */
  raw: string
  events: RecordedEvent[]
  /** Events that did not match the documented shape, with zod's reason. */
  invalid: { index: number; issues: string }[]
}

export type FakeLangfuseMode = 'normal' | 'fail' | 'refuse'

export async function startFakeLangfuse(opts: { publicKey: string; secretKey: string; mode?: FakeLangfuseMode }) {
  let mode: FakeLangfuseMode = opts.mode ?? 'normal'
  const requests: LangfuseRequest[] = []
  const expected = `Basic ${Buffer.from(`${opts.publicKey}:${opts.secretKey}`).toString('base64')}`
  const server = createServer((req, res) => {
    let raw = ''
    req.on('data', (c) => (raw += c))
    req.on('end', () => {
      const answer = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(body))
      }
      if (req.method !== 'POST' || req.url !== '/api/public/ingestion') return answer(404, { message: 'not found' })
      const recorded: LangfuseRequest = { authorization: req.headers.authorization, raw, events: [], invalid: [] }
      requests.push(recorded)
      if (mode === 'fail') return answer(500, { message: 'internal error' })
      if (req.headers.authorization !== expected) return answer(401, { message: 'Invalid credentials' })
      const parsed = z.strictObject({ batch: z.array(z.unknown()), metadata: z.unknown().optional() }).safeParse(JSON.parse(raw))
      if (!parsed.success) return answer(400, { message: 'Invalid request data', error: parsed.error.issues })
      const successes: { id: string; status: number }[] = []
      const errors: { id: string; status: number; message?: string; error?: unknown }[] = []
      parsed.data.batch.forEach((e, index) => {
        const event = ingestionEventSchema.safeParse(e)
        const eventId = String((e as { id?: unknown })?.id ?? index)
        if (!event.success) {
          const issues = event.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')
          recorded.invalid.push({ index, issues })
          errors.push({ id: eventId, status: 400, message: 'Invalid request data', error: issues })
        } else if (mode === 'refuse') {
          recorded.events.push(event.data)
          errors.push({ id: eventId, status: 403, message: 'Project is over its quota' })
        } else {
          recorded.events.push(event.data)
          successes.push({ id: eventId, status: 201 })
        }
      })
      answer(207, { successes, errors })
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    requests,
    /** Every event received, in order. */
    events: () => requests.flatMap((r) => r.events),
    setMode(m: FakeLangfuseMode) {
      mode = m
    },
    stop: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  }
}
