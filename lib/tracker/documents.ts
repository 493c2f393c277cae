/**
 * Every GraphQL document the factory sends to Linear. test/documents.test.ts validates each one
 * against Linear's real schema (../shared/linear/schema.graphql). Keep `first` small where
 * connections nest: Linear caps one query at 10,000 complexity points.
 */

/**
 * Page sizes used by the poll document (complexity grows with their product). An idle tick with
 * a cursor asks for a small page (usually nothing changed) and pages on only when it is full;
 * the first sync asks for big pages.
 */
export const POLL_PAGE = { issues: 50, issuesWithCursor: 10, comments: 20, states: 15, labels: 10 } as const

/** Comments per page when an issue's first page was full (ISSUE_COMMENTS_QUERY), and at most this many such pages per issue read. */
export const COMMENTS_PAGE = 100
export const MAX_COMMENT_PAGES = 20

const ISSUE_FIELDS = /* GraphQL */ `
  fragment FactoryIssue on Issue {
    id
    identifier
    number
    title
    description
    url
    branchName
    priority
    createdAt
    updatedAt
    state { id name type }
    team {
      id
      key
      states(first: $statesFirst) { nodes { id name type position } }
    }
    labels(first: $labelsFirst) { nodes { name } }
    project { id name }
    assignee { id name }
    delegate { id name }
    comments(first: $commentsFirst) {
      nodes { id body createdAt user { id name email } }
      pageInfo { hasNextPage endCursor }
    }
  }
`

/**
 * The one read per idle tick: the viewer (to exclude our own comments), the issues assigned or
 * delegated to the viewer that changed (or got a comment) since the cursor, and the current
 * state and assignment of the issues the factory is running (`watched`, `first` = their count,
 * so it costs nothing when nothing runs): an issue unassigned while running no longer matches
 * the first filter, and reconciliation must still see it.
 */
export const POLL_QUERY = /* GraphQL */ `
  query FactoryPoll($filter: IssueFilter!, $first: Int!, $after: String, $commentsFirst: Int!, $statesFirst: Int!, $labelsFirst: Int!, $watchFilter: IssueFilter!, $watchFirst: Int!) {
    viewer { id name }
    issues(filter: $filter, first: $first, after: $after, orderBy: updatedAt) {
      nodes { ...FactoryIssue }
      pageInfo { hasNextPage endCursor }
    }
    watched: issues(filter: $watchFilter, first: $watchFirst) {
      nodes { id identifier updatedAt state { id name type } assignee { id } delegate { id } }
    }
  }
  ${ISSUE_FIELDS}
`

/** One issue by id or identifier (by-hand steps, and a fresh read before a run). */
export const ISSUE_QUERY = /* GraphQL */ `
  query FactoryIssue($id: String!, $commentsFirst: Int!, $statesFirst: Int!, $labelsFirst: Int!) {
    viewer { id name }
    issue(id: $id) { ...FactoryIssue }
  }
  ${ISSUE_FIELDS}
`

/**
 * More of one issue's comments, after a full first page: the rest of the comments since the last
 * run (newest-first pages), or the newest ones (Linear's docs say connections are ordered by
 * createdAt without saying which way; oldest-first pages hold them last).
 */
export const ISSUE_COMMENTS_QUERY = /* GraphQL */ `
  query FactoryIssueComments($id: String!, $first: Int!, $after: String) {
    issue(id: $id) {
      id
      comments(first: $first, after: $after) {
        nodes { id body createdAt user { id name email } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
`

/** Move an issue to another workflow state. */
export const ISSUE_MOVE_MUTATION = /* GraphQL */ `
  mutation FactoryIssueMove($id: String!, $stateId: String!) {
    issueUpdate(id: $id, input: { stateId: $stateId }) {
      success
      issue { id state { id name type } }
    }
  }
`

/** agent_session: make the agent the issue's delegate (Linear's advice when a session starts on an issue delegated to nobody). */
export const ISSUE_DELEGATE_MUTATION = /* GraphQL */ `
  mutation FactoryIssueDelegate($id: String!, $delegateId: String!) {
    issueUpdate(id: $id, input: { delegateId: $delegateId }) {
      success
    }
  }
`

/** Post a comment with a client-chosen id (invariant "idempotent-writes": a retry cannot duplicate it). */
export const COMMENT_CREATE_MUTATION = /* GraphQL */ `
  mutation FactoryCommentCreate($id: String!, $issueId: String!, $body: String!) {
    commentCreate(input: { id: $id, issueId: $issueId, body: $body }) {
      success
      comment { id }
    }
  }
`

/** Does a comment with this id exist already (after an ambiguous create)? */
export const COMMENT_QUERY = /* GraphQL */ `
  query FactoryComment($id: String!) {
    comment(id: $id) { id issue { id } }
  }
`

/** Link the PR to the issue (attachments with the same url + issue are updated, not duplicated). */
export const ATTACH_URL_MUTATION = /* GraphQL */ `
  mutation FactoryAttachPr($issueId: String!, $url: String!, $title: String!) {
    attachmentLinkURL(issueId: $issueId, url: $url, title: $title) {
      success
    }
  }
`

/** Activities per page when a worker reads a session back (newest first). */
export const SESSION_ACTIVITIES_PAGE = 20

/**
 * Post an agent activity with a client-chosen id derived from (session, run, seq) (invariant
 * "idempotent-writes"): a retry whose first attempt landed is refused as a duplicate id, which
 * the caller treats as done (confirm with AGENT_ACTIVITY_QUERY). `content` is Linear's JSON:
 * `{type: thought|elicitation|response|error, body}` or `{type: action, action, parameter, result?}`.
 */
export const AGENT_ACTIVITY_CREATE_MUTATION = /* GraphQL */ `
  mutation FactoryAgentActivityCreate($input: AgentActivityCreateInput!) {
    agentActivityCreate(input: $input) {
      success
      agentActivity { id }
    }
  }
`

/** Does an agent activity with this id exist already (after an ambiguous or refused create)? */
export const AGENT_ACTIVITY_QUERY = /* GraphQL */ `
  query FactoryAgentActivity($id: String!) {
    agentActivity(id: $id) { id agentSession { id } }
  }
`

/** Session links (the PR in `externalUrls`, or `addedExternalUrls`) and the whole `plan` [{content, status}]. */
export const AGENT_SESSION_UPDATE_MUTATION = /* GraphQL */ `
  mutation FactoryAgentSessionUpdate($id: String!, $input: AgentSessionUpdateInput!) {
    agentSessionUpdate(id: $id, input: $input) {
      success
      agentSession { id status externalLinks { label url } }
    }
  }
`

/** A session with its issue and its newest activities: what a worker resuming it needs. */
export const AGENT_SESSION_QUERY = /* GraphQL */ `
  query FactoryAgentSession($id: String!, $activitiesFirst: Int!) {
    agentSession(id: $id) {
      id
      status
      createdAt
      updatedAt
      appUser { id name }
      creator { id name email }
      externalLinks { label url }
      issue { id identifier title description url branchName state { id name type } team { id key } }
      activities(first: $activitiesFirst) {
        nodes {
          id
          createdAt
          ephemeral
          signal
          user { id }
          content {
            ... on AgentActivityPromptContent { type body }
            ... on AgentActivityThoughtContent { type body }
            ... on AgentActivityResponseContent { type body }
            ... on AgentActivityElicitationContent { type body }
            ... on AgentActivityErrorContent { type body }
            ... on AgentActivityActionContent { type action parameter result }
          }
        }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
`

/** Linear's ranking of candidate repositories for an issue (confidence 0-1): routing when no repos rule decides. */
export const REPOSITORY_SUGGESTIONS_QUERY = /* GraphQL */ `
  query FactoryRepositorySuggestions($issueId: String!, $agentSessionId: String, $candidates: [CandidateRepository!]!) {
    issueRepositorySuggestions(issueId: $issueId, agentSessionId: $agentSessionId, candidateRepositories: $candidates) {
      suggestions { repositoryFullName hostname confidence }
    }
  }
`

/** Who the key belongs to (doctor: Linear reachable and the key accepted, in one request). */
export const VIEWER_QUERY = /* GraphQL */ `
  query FactoryViewer {
    viewer { id name }
  }
`

/** Every document above, by name (for the schema validation test). */
export const ALL_DOCUMENTS: Record<string, string> = {
  POLL_QUERY,
  ISSUE_QUERY,
  ISSUE_COMMENTS_QUERY,
  ISSUE_MOVE_MUTATION,
  ISSUE_DELEGATE_MUTATION,
  COMMENT_CREATE_MUTATION,
  COMMENT_QUERY,
  ATTACH_URL_MUTATION,
  AGENT_ACTIVITY_CREATE_MUTATION,
  AGENT_ACTIVITY_QUERY,
  AGENT_SESSION_UPDATE_MUTATION,
  AGENT_SESSION_QUERY,
  REPOSITORY_SUGGESTIONS_QUERY,
  VIEWER_QUERY,
}
