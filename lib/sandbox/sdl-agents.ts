/**
 * The agent-session part of the sandbox's schema (appended to SANDBOX_SDL): AgentSession,
 * AgentActivity and its content union, the queries and mutations an agent uses. Same rule as
 * sdl.ts: every name and type below is Linear's, fields the sandbox does not serve are left out
 * (test/sandbox-schema.test.ts proves it).
 */
export const AGENT_SDL = /* GraphQL */ `
scalar JSON

extend type Query {
  agentSession(id: String!): AgentSession!
  agentSessions(after: String, before: String, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): AgentSessionConnection!
  agentActivity(id: String!): AgentActivity!
  issueRepositorySuggestions(agentSessionId: String, candidateRepositories: [CandidateRepository!]!, issueId: String!): RepositorySuggestionsPayload!
}

input CandidateRepository {
  hostname: String!
  repositoryFullName: String!
}

type RepositorySuggestion {
  confidence: Float!
  hostname: String
  repositoryFullName: String!
}

type RepositorySuggestionsPayload {
  suggestions: [RepositorySuggestion!]!
}

extend type Mutation {
  agentActivityCreate(input: AgentActivityCreateInput!): AgentActivityPayload!
  agentSessionUpdate(id: String!, input: AgentSessionUpdateInput!): AgentSessionPayload!
  agentSessionCreateOnIssue(input: AgentSessionCreateOnIssue!): AgentSessionPayload!
  agentSessionCreateOnComment(input: AgentSessionCreateOnComment!): AgentSessionPayload!
}

enum AgentSessionStatus {
  active
  awaitingInput
  complete
  error
  pending
  stale
}

enum AgentActivityType {
  action
  elicitation
  error
  prompt
  response
  thought
}

enum AgentActivitySignal {
  auth
  continue
  select
  stop
}

type AgentSession implements Node {
  id: ID!
  createdAt: DateTime!
  updatedAt: DateTime!
  archivedAt: DateTime
  status: AgentSessionStatus!
  appUser: User!
  creator: User
  issue: Issue
  comment: Comment
  startedAt: DateTime
  endedAt: DateTime
  externalLinks: [AgentSessionExternalLink!]!
  externalUrls: JSON!
  plan: JSON
  slugId: String!
  url: String
  activities(after: String, before: String, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): AgentActivityConnection!
}

type AgentSessionExternalLink {
  label: String!
  url: String!
}

type AgentActivity implements Node {
  id: ID!
  createdAt: DateTime!
  updatedAt: DateTime!
  archivedAt: DateTime
  agentSession: AgentSession!
  content: AgentActivityContent!
  ephemeral: Boolean!
  signal: AgentActivitySignal
  signalMetadata: JSON
  user: User!
}

union AgentActivityContent =
  | AgentActivityActionContent
  | AgentActivityElicitationContent
  | AgentActivityErrorContent
  | AgentActivityPromptContent
  | AgentActivityResponseContent
  | AgentActivityThoughtContent

type AgentActivityActionContent {
  action: String!
  parameter: String!
  result: String
  type: AgentActivityType!
}

type AgentActivityElicitationContent {
  body: String!
  bodyData: JSONObject!
  type: AgentActivityType!
}

type AgentActivityErrorContent {
  body: String!
  bodyData: JSONObject!
  type: AgentActivityType!
}

type AgentActivityPromptContent {
  body: String!
  bodyData: JSONObject!
  type: AgentActivityType!
}

type AgentActivityResponseContent {
  body: String!
  bodyData: JSONObject!
  type: AgentActivityType!
}

type AgentActivityThoughtContent {
  body: String!
  bodyData: JSONObject!
  type: AgentActivityType!
}

type AgentSessionEdge { cursor: String! node: AgentSession! }
type AgentActivityEdge { cursor: String! node: AgentActivity! }
type AgentSessionConnection { edges: [AgentSessionEdge!]! nodes: [AgentSession!]! pageInfo: PageInfo! }
type AgentActivityConnection { edges: [AgentActivityEdge!]! nodes: [AgentActivity!]! pageInfo: PageInfo! }

type AgentActivityPayload {
  agentActivity: AgentActivity!
  lastSyncId: Float!
  success: Boolean!
}

type AgentSessionPayload {
  agentSession: AgentSession!
  lastSyncId: Float!
  success: Boolean!
}

input AgentActivityCreateInput {
  agentSessionId: String!
  content: JSONObject!
  ephemeral: Boolean
  id: String
  signal: AgentActivitySignal
  signalMetadata: JSONObject
}

input AgentSessionExternalUrlInput {
  label: String!
  url: String!
}

input AgentSessionUpdateInput {
  addedExternalUrls: [AgentSessionExternalUrlInput!]
  externalUrls: [AgentSessionExternalUrlInput!]
  plan: JSONObject
  removedExternalUrls: [String!]
}

input AgentSessionCreateOnIssue {
  externalUrls: [AgentSessionExternalUrlInput!]
  issueId: String!
}

input AgentSessionCreateOnComment {
  commentId: String!
  externalUrls: [AgentSessionExternalUrlInput!]
}
`
