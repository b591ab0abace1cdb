// HTTP JSON under /api with a bearer token (docs/protocol.md, "HTTP routes").

import type { MessageHit, UserHit } from './search'
import type { ConversationSummary, WireMessage } from './types'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
  }
}

export interface LoginReply {
  token: string
  user: string | (Record<string, unknown> & { username: string })
  device: string | Record<string, unknown>
  expires_at: number
}

export interface Group {
  id: string
  conversation: string
  name: string
  type: 'open' | 'closed'
  description?: string
  owner: string
  member_count: number
  role?: string
  /** In search results: whether you are a member. */
  member?: boolean
}

export interface Member {
  username: string
  role: string
}

export interface Page {
  messages: WireMessage[]
  has_more: boolean
}

type Fetch = typeof fetch

export class Api {
  token: string | null = null

  constructor(
    private readonly base = '',
    private readonly fetcher: Fetch = (...args) => fetch(...args),
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    if (this.token) headers.Authorization = `Bearer ${this.token}`
    let response: Response
    try {
      response = await this.fetcher(`${this.base}/api${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch {
      throw new ApiError(0, 'network', 'the server cannot be reached')
    }
    const text = await response.text()
    const parsed = text ? safeJson(text) : null
    if (!response.ok) {
      const error = (parsed as { error?: { code: string; message: string; details?: Record<string, unknown> } })
        ?.error
      throw new ApiError(
        response.status,
        error?.code ?? 'http_' + response.status,
        error?.message ?? response.statusText,
        error?.details,
      )
    }
    return parsed as T
  }

  register(username: string, password: string, displayName?: string): Promise<unknown> {
    const body: Record<string, string> = { username, password }
    if (displayName) body.display_name = displayName
    return this.request('POST', '/register', body)
  }

  login(username: string, password: string, deviceName: string): Promise<LoginReply> {
    return this.request('POST', '/login', { username, password, device_name: deviceName })
  }

  logout(): Promise<unknown> {
    return this.request('POST', '/logout')
  }

  me(): Promise<Record<string, unknown> & { username: string }> {
    return this.request('GET', '/me')
  }

  user(username: string): Promise<Record<string, unknown> & { username: string }> {
    return this.request('GET', `/users/${encodeURIComponent(username)}`)
  }

  async conversations(): Promise<ConversationSummary[]> {
    const reply = await this.request<ConversationSummary[] | { conversations: ConversationSummary[] }>(
      'GET',
      '/conversations',
    )
    return Array.isArray(reply) ? reply : reply.conversations
  }

  async history(conversation: string, options: { before?: number; after?: number; limit?: number; direction?: 'forward' | 'backward' } = {}): Promise<Page> {
    const query = new URLSearchParams()
    for (const [key, value] of Object.entries(options)) {
      if (value !== undefined) query.set(key, String(value))
    }
    const suffix = query.toString() ? `?${query}` : ''
    return this.request('GET', `/conversations/${encodeURIComponent(conversation)}/messages${suffix}`)
  }

  recall(conversation: string, seq: number): Promise<unknown> {
    return this.request('POST', `/conversations/${encodeURIComponent(conversation)}/messages/${seq}/recall`)
  }

  edit(conversation: string, seq: number, text: string): Promise<unknown> {
    return this.request('PATCH', `/conversations/${encodeURIComponent(conversation)}/messages/${seq}`, { text })
  }

  async groups(): Promise<Group[]> {
    const reply = await this.request<Group[] | { groups: Group[] }>('GET', '/groups')
    return Array.isArray(reply) ? reply : reply.groups
  }

  createGroup(name: string, type: 'open' | 'closed', members: string[]): Promise<Group> {
    return this.request('POST', '/groups', { name, type, members })
  }

  group(gid: string): Promise<Group> {
    return this.request('GET', `/groups/${encodeURIComponent(gid)}`)
  }

  async members(gid: string): Promise<Member[]> {
    const reply = await this.request<Member[] | { members: Member[] }>(
      'GET',
      `/groups/${encodeURIComponent(gid)}/members`,
    )
    return Array.isArray(reply) ? reply : reply.members
  }

  addMembers(gid: string, users: string[]): Promise<unknown> {
    return this.request('POST', `/groups/${encodeURIComponent(gid)}/members`, { users })
  }

  removeMember(gid: string, username: string): Promise<unknown> {
    return this.request('DELETE', `/groups/${encodeURIComponent(gid)}/members/${encodeURIComponent(username)}`)
  }

  setRole(gid: string, username: string, role: 'admin' | 'member'): Promise<unknown> {
    return this.request('PUT', `/groups/${encodeURIComponent(gid)}/members/${encodeURIComponent(username)}/role`, { role })
  }

  transferOwnership(gid: string, username: string): Promise<unknown> {
    return this.request('POST', `/groups/${encodeURIComponent(gid)}/owner`, { username })
  }

  join(gid: string): Promise<unknown> {
    return this.request('POST', `/groups/${encodeURIComponent(gid)}/join`)
  }

  leave(gid: string): Promise<unknown> {
    return this.request('POST', `/groups/${encodeURIComponent(gid)}/leave`)
  }

  searchUsers(q: string): Promise<UserHit[]> {
    return this.request('GET', `/search/users?${new URLSearchParams({ q })}`)
  }

  searchGroups(q: string): Promise<Group[]> {
    return this.request('GET', `/search/groups?${new URLSearchParams({ q })}`)
  }

  searchMessages(q: string, cursor?: string): Promise<{ hits: MessageHit[]; cursor: string | null }> {
    const query = new URLSearchParams({ q })
    if (cursor) query.set('cursor', cursor)
    return this.request('GET', `/search/messages?${query}`)
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}
