/** Linear-like derived names: slugs, identifiers, branch names, issue URLs. */
import type { IssueRecord, TeamRecord, UserRecord } from './types.ts'

/** `Fix the Login page!` -> `fix-the-login-page` (ASCII, at most 60 characters, no trailing dash). */
export function slugify(text: string, max = 60): string {
  const slug = text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
  return slug.slice(0, max).replace(/-+$/, '')
}

/** The user's handle: the local part of the email, slugged (`ada.lovelace@x.io` -> `ada.lovelace`). */
export function userHandle(user: Pick<UserRecord, 'email'>): string {
  const local = user.email.split('@')[0] ?? ''
  return (
    local
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'user'
  )
}

export function issueIdentifier(issue: Pick<IssueRecord, 'number'>, team: Pick<TeamRecord, 'key'>): string {
  return `${team.key}-${issue.number}`
}

/** Linear's suggested branch: `handle/eng-1-title-slug`, or `eng-1-title-slug` when unassigned. */
export function issueBranchName(identifier: string, title: string, assignee: UserRecord | undefined): string {
  const tail = [identifier.toLowerCase(), slugify(title)].filter(Boolean).join('-')
  return assignee ? `${userHandle(assignee)}/${tail}` : tail
}

export function issueUrl(baseUrl: string, urlKey: string, identifier: string, title: string): string {
  const slug = slugify(title)
  return `${baseUrl}/${urlKey}/issue/${identifier}${slug ? `/${slug}` : ''}`
}

export const PRIORITY_LABELS = ['No priority', 'Urgent', 'High', 'Medium', 'Low'] as const

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isUuid(value: string): boolean {
  return UUID.test(value)
}
