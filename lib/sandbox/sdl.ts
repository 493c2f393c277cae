/**
 * The sandbox's GraphQL schema: a hand-written SUBSET of Linear's public schema
 * (../shared/linear/schema.graphql). Every type, field, argument, input field and enum value
 * below exists in Linear's schema with the identical type; fields Linear has that the sandbox
 * does not serve are simply left out. test/sandbox-schema.test.ts proves this.
 *
 * Filter inputs carry only the fields lib/sandbox/filter.ts evaluates, so a document using any
 * other filter field fails validation with an error naming it (a fake that ignored a filter
 * would prove nothing). The agent-session types live in sdl-agents.ts and are appended.
 */
import { AGENT_SDL } from './sdl-agents.ts'

const BASE_SDL = /* GraphQL */ `
schema {
  query: Query
  mutation: Mutation
}

scalar DateTime
scalar DateTimeOrDuration
scalar JSONObject

enum PaginationOrderBy {
  createdAt
  updatedAt
}

interface Node {
  id: ID!
}

type PageInfo {
  endCursor: String
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
}

type Query {
  viewer: User!
  organization: Organization!
  user(id: String!): User!
  users(after: String, before: String, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): UserConnection!
  team(id: String!): Team!
  teams(after: String, before: String, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): TeamConnection!
  workflowStates(after: String, before: String, filter: WorkflowStateFilter, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): WorkflowStateConnection!
  issue(id: String!): Issue!
  issues(after: String, before: String, filter: IssueFilter, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): IssueConnection!
  comment(id: String): Comment!
}

type Mutation {
  issueUpdate(id: String!, input: IssueUpdateInput!): IssuePayload!
  commentCreate(input: CommentCreateInput!): CommentPayload!
  attachmentLinkURL(issueId: String!, title: String, url: String!): AttachmentPayload!
}

type User implements Node {
  id: ID!
  name: String!
  displayName: String!
  email: String!
  active: Boolean!
  admin: Boolean!
  isMe: Boolean!
  url: String!
  createdAt: DateTime!
  updatedAt: DateTime!
}

type Organization implements Node {
  id: ID!
  name: String!
  urlKey: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  teams(after: String, before: String, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): TeamConnection!
  users(after: String, before: String, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): UserConnection!
}

type Team implements Node {
  id: ID!
  key: String!
  name: String!
  description: String
  createdAt: DateTime!
  updatedAt: DateTime!
  organization: Organization!
  states(after: String, before: String, filter: WorkflowStateFilter, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): WorkflowStateConnection!
  issues(after: String, before: String, filter: IssueFilter, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): IssueConnection!
}

type WorkflowState implements Node {
  id: ID!
  name: String!
  type: String!
  position: Float!
  color: String!
  description: String
  createdAt: DateTime!
  updatedAt: DateTime!
  team: Team!
}

type Issue implements Node {
  id: ID!
  identifier: String!
  number: Float!
  title: String!
  description: String
  url: String!
  branchName: String!
  priority: Float!
  priorityLabel: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  archivedAt: DateTime
  state: WorkflowState!
  team: Team!
  assignee: User
  delegate: User
  creator: User
  labelIds: [String!]!
  project: Project
  labels(after: String, before: String, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): IssueLabelConnection!
  comments(after: String, before: String, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): CommentConnection!
  attachments(after: String, before: String, first: Int, includeArchived: Boolean, last: Int, orderBy: PaginationOrderBy): AttachmentConnection!
}

type Project implements Node {
  id: ID!
  name: String!
}

type IssueLabel implements Node {
  id: ID!
  name: String!
  color: String!
  createdAt: DateTime!
  updatedAt: DateTime!
}

type Comment implements Node {
  id: ID!
  body: String!
  url: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  editedAt: DateTime
  user: User
  issue: Issue
  issueId: String
  parent: Comment
  parentId: String
}

type Attachment implements Node {
  id: ID!
  title: String!
  subtitle: String
  url: String!
  metadata: JSONObject!
  sourceType: String
  createdAt: DateTime!
  updatedAt: DateTime!
  issue: Issue!
  creator: User
}

type UserEdge { cursor: String! node: User! }
type TeamEdge { cursor: String! node: Team! }
type WorkflowStateEdge { cursor: String! node: WorkflowState! }
type IssueEdge { cursor: String! node: Issue! }
type IssueLabelEdge { cursor: String! node: IssueLabel! }
type CommentEdge { cursor: String! node: Comment! }
type AttachmentEdge { cursor: String! node: Attachment! }

type UserConnection { edges: [UserEdge!]! nodes: [User!]! pageInfo: PageInfo! }
type TeamConnection { edges: [TeamEdge!]! nodes: [Team!]! pageInfo: PageInfo! }
type WorkflowStateConnection { edges: [WorkflowStateEdge!]! nodes: [WorkflowState!]! pageInfo: PageInfo! }
type IssueConnection { edges: [IssueEdge!]! nodes: [Issue!]! pageInfo: PageInfo! }
type IssueLabelConnection { edges: [IssueLabelEdge!]! nodes: [IssueLabel!]! pageInfo: PageInfo! }
type CommentConnection { edges: [CommentEdge!]! nodes: [Comment!]! pageInfo: PageInfo! }
type AttachmentConnection { edges: [AttachmentEdge!]! nodes: [Attachment!]! pageInfo: PageInfo! }

type IssuePayload {
  issue: Issue
  lastSyncId: Float!
  success: Boolean!
}

type CommentPayload {
  comment: Comment!
  lastSyncId: Float!
  success: Boolean!
}

type AttachmentPayload {
  attachment: Attachment!
  lastSyncId: Float!
  success: Boolean!
}

input IssueUpdateInput {
  assigneeId: String
  delegateId: String
  description: String
  priority: Int
  stateId: String
  title: String
}

input CommentCreateInput {
  body: String
  id: String
  issueId: String
  parentId: String
}

input BooleanComparator {
  eq: Boolean
  neq: Boolean
}

input StringComparator {
  eq: String
  in: [String!]
  neq: String
  nin: [String!]
}

input IDComparator {
  eq: ID
  in: [ID!]
  neq: ID
  nin: [ID!]
}

input IssueIDComparator {
  eq: ID
  in: [ID!]
  neq: ID
  nin: [ID!]
}

input DateComparator {
  eq: DateTimeOrDuration
  gt: DateTimeOrDuration
  gte: DateTimeOrDuration
  lt: DateTimeOrDuration
  lte: DateTimeOrDuration
}

input UserFilter {
  email: StringComparator
  id: IDComparator
  isMe: BooleanComparator
}

input NullableUserFilter {
  email: StringComparator
  id: IDComparator
  isMe: BooleanComparator
  null: Boolean
}

input CommentFilter {
  createdAt: DateComparator
  user: UserFilter
}

input CommentCollectionFilter {
  some: CommentFilter
}

input WorkflowStateFilter {
  name: StringComparator
  type: StringComparator
}

input TeamFilter {
  key: StringComparator
}

input IssueFilter {
  and: [IssueFilter!]
  assignee: NullableUserFilter
  comments: CommentCollectionFilter
  createdAt: DateComparator
  delegate: NullableUserFilter
  id: IssueIDComparator
  or: [IssueFilter!]
  state: WorkflowStateFilter
  team: TeamFilter
  updatedAt: DateComparator
}
`

export const SANDBOX_SDL = BASE_SDL + AGENT_SDL
