// The search box's state: users, groups and messages matching what was typed
// (docs/search.md). The newest query wins: replies to older ones are dropped,
// so results never flicker back to what was typed before.

import { ApiError, type Api, type Group } from './api'

export interface SnippetPiece {
  text: string
  match: boolean
}

export interface MessageHit {
  conversation: string
  seq: number
  from: string | null
  ts: number
  snippet: SnippetPiece[]
}

export interface UserHit {
  username: string
  display_name: string
  signature: string
}

export interface SearchResults {
  query: string
  users: UserHit[]
  groups: Group[]
  messages: MessageHit[]
  /** The next page of messages, or null when there is none. */
  cursor: string | null
  loading: boolean
  error: string
}

export function emptyResults(): SearchResults {
  return { query: '', users: [], groups: [], messages: [], cursor: null, loading: false, error: '' }
}

export class Search {
  private generation = 0

  constructor(
    private readonly api: Api,
    readonly results: SearchResults,
  ) {}

  /** Search for `query` (blank: clear the results). */
  async run(query: string): Promise<void> {
    const mine = ++this.generation
    const results = this.results
    Object.assign(results, emptyResults(), { query })
    if (!query.trim()) return
    results.loading = true
    try {
      const [users, groups, messages] = await Promise.all([
        this.api.searchUsers(query),
        this.api.searchGroups(query),
        this.api.searchMessages(query),
      ])
      if (mine !== this.generation) return
      Object.assign(results, { users, groups, messages: messages.hits, cursor: messages.cursor })
    } catch (caught) {
      if (mine === this.generation) results.error = describe(caught)
    } finally {
      if (mine === this.generation) results.loading = false
    }
  }

  /** The next page of message hits. */
  async more(): Promise<void> {
    const results = this.results
    if (!results.cursor || results.loading) return
    const mine = this.generation
    results.loading = true
    try {
      const page = await this.api.searchMessages(results.query, results.cursor)
      if (mine !== this.generation) return
      results.messages.push(...page.hits)
      results.cursor = page.cursor
    } catch (caught) {
      if (mine === this.generation) results.error = describe(caught)
    } finally {
      if (mine === this.generation) results.loading = false
    }
  }

  clear(): void {
    this.generation++
    Object.assign(this.results, emptyResults())
  }
}

function describe(caught: unknown): string {
  return caught instanceof ApiError ? caught.message : 'search failed'
}
