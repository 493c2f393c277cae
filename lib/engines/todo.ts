/**
 * The engines' todo lists as one plan (EngineEvent `plan`, the whole list each time; Linear shows
 * it as the agent session's plan). Claude Code has two generations of todo tools: `TodoWrite`
 * (the whole list per call; older CLIs) and the task tools (`TaskCreate` one task, its id only in
 * the result "Task #N created successfully"; `TaskUpdate {taskId, status}`; `TaskList`/`TaskGet`
 * read). Codex's `exec --json` reports a `todo_list` item with done / not done per step. These
 * calls are the plan, not work worth showing as actions: the parser swallows them and their results.
 */
import { z } from '../zod.ts'
import type { PlanStep } from './types.ts'

const STATUS: Record<string, PlanStep['status']> = { pending: 'pending', in_progress: 'inProgress', completed: 'completed' }
const todoWriteInput = z.object({ todos: z.array(z.object({ content: z.string(), status: z.string() })) })
const taskCreateInput = z.object({ subject: z.string() })
const taskUpdateInput = z.object({ taskId: z.union([z.string(), z.number()]), status: z.string().optional(), subject: z.string().optional() })
const READ_ONLY = new Set(['TaskList', 'TaskGet'])

/** TodoWrite's input ({todos: [{content, status: pending|in_progress|completed}]}) as plan steps; undefined for another shape. */
export function todoWritePlan(input: unknown): PlanStep[] | undefined {
  const parsed = todoWriteInput.safeParse(input)
  if (!parsed.success) return undefined
  return parsed.data.todos.map((t) => ({ content: t.content, status: STATUS[t.status] ?? 'pending' }))
}

/**
 * Codex's todo list as plan steps. `exec --json` keeps only done / not done; the first step not
 * done is the one Codex works on (its update_plan allows one in_progress step), so it reads inProgress.
 */
export function codexTodoPlan(items: { text: string; completed: boolean }[]): PlanStep[] {
  const current = items.findIndex((i) => !i.completed)
  return items.map((i, n) => ({ content: i.text, status: i.completed ? 'completed' : n === current ? 'inProgress' : 'pending' }))
}

export interface TaskListFollower {
  /** A tool call: `handled` when it is a todo tool (not an action); `plan` when the list changed. */
  use(toolUseId: string, name: string, input: unknown): { handled: boolean; plan?: PlanStep[] }
  /** A tool result: `handled` when it answers a todo tool; `plan` when it completed a TaskCreate. */
  result(toolUseId: string, text: string, isError: boolean): { handled: boolean; plan?: PlanStep[] }
}

/** Follows one Claude Code run's todo list across TodoWrite and the task tools. */
export function claudeTaskList(): TaskListFollower {
  const tasks = new Map<string, PlanStep>()
  const creating = new Map<string, string>()
  const ours = new Set<string>()
  const plan = () => [...tasks.values()].map((t) => ({ ...t }))

  return {
    use(id, name, input) {
      if (name === 'TodoWrite') {
        const steps = todoWritePlan(input)
        if (!steps) return { handled: false }
        ours.add(id)
        tasks.clear()
        steps.forEach((s, i) => tasks.set(`todo-${i}`, s))
        return { handled: true, plan: plan() }
      }
      if (name === 'TaskCreate') {
        const parsed = taskCreateInput.safeParse(input)
        if (!parsed.success) return { handled: false }
        ours.add(id)
        creating.set(id, parsed.data.subject)
        return { handled: true }
      }
      if (name === 'TaskUpdate') {
        const parsed = taskUpdateInput.safeParse(input)
        if (!parsed.success) return { handled: false }
        ours.add(id)
        const key = String(parsed.data.taskId)
        const task = tasks.get(key)
        if (!task) return { handled: true }
        if (parsed.data.status === 'deleted') tasks.delete(key)
        else {
          if (parsed.data.status && STATUS[parsed.data.status]) task.status = STATUS[parsed.data.status]!
          if (parsed.data.subject) task.content = parsed.data.subject
        }
        return { handled: true, plan: plan() }
      }
      if (READ_ONLY.has(name)) {
        ours.add(id)
        return { handled: true }
      }
      return { handled: false }
    },
    result(id, text, isError) {
      if (!ours.has(id)) return { handled: false }
      const subject = creating.get(id)
      creating.delete(id)
      const created = subject !== undefined && !isError ? /^Task #(\S+) created successfully/.exec(text.trim()) : null
      if (!created) return { handled: true }
      tasks.set(created[1]!, { content: subject!, status: 'pending' })
      return { handled: true, plan: plan() }
    },
  }
}
