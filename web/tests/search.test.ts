import { describe, expect, it } from 'vitest'
import { Api } from '../src/core/api'
import { createState, Engine } from '../src/core/engine'
import { emptyResults, Search, type MessageHit } from '../src/core/search'
import { FakeApi, FakeSocket, ManualTimers, MemoryStorage, message, settle } from './fakes'

function hit(seq: number, text: string): MessageHit {
  return { conversation: 'group:g', seq, from: 'bob', ts: 1, snippet: [{ text, match: true }] }
}

/** An API whose message searches answer only when the test says so. */
class ScriptedApi extends Api {
  pending = new Map<string, (reply: { hits: MessageHit[]; cursor: string | null }) => void>()

  constructor() {
    super('', () => Promise.reject(new Error('no network in tests')))
  }

  override async searchUsers() {
    return []
  }

  override async searchGroups() {
    return []
  }

  override searchMessages(q: string, cursor?: string) {
    return new Promise<{ hits: MessageHit[]; cursor: string | null }>((resolve) => {
      this.pending.set(`${q}|${cursor ?? ''}`, resolve)
    })
  }
}

describe('Search', () => {
  it('keeps the newest query: a slower reply to an older one is dropped', async () => {
    const api = new ScriptedApi()
    const results = emptyResults()
    const search = new Search(api, results)
    const first = search.run('梧')
    const second = search.run('梧桐')
    api.pending.get('梧桐|')?.({ hits: [hit(2, '梧桐')], cursor: null })
    await second
    api.pending.get('梧|')?.({ hits: [hit(1, '梧')], cursor: null })
    await first
    expect(results.query).toBe('梧桐')
    expect(results.messages.map((h) => h.seq)).toEqual([2])
    expect(results.loading).toBe(false)
  })

  it('pages messages with the cursor and clears on a blank query', async () => {
    const api = new ScriptedApi()
    const results = emptyResults()
    const search = new Search(api, results)
    const running = search.run('群')
    api.pending.get('群|')?.({ hits: [hit(9, '群')], cursor: 'c1' })
    await running
    const more = search.more()
    api.pending.get('群|c1')?.({ hits: [hit(3, '群')], cursor: null })
    await more
    expect(results.messages.map((h) => h.seq)).toEqual([9, 3])
    expect(results.cursor).toBeNull()
    await search.run('  ')
    expect(results).toEqual({ ...emptyResults(), query: '  ' })
  })
})

describe('Engine.openAt', () => {
  it('loads history back to the hit and asks the view to show it', async () => {
    const api = new FakeApi()
    api.histories['group:g'] = Array.from({ length: 120 }, (_, i) => message('group:g', i + 1, 'bob'))
    const state = createState('alice')
    const engine = new Engine(state, {
      api,
      wsUrl: 'ws://test/ws',
      token: () => 'tok',
      openSocket: (url) => new FakeSocket(url),
      timers: new ManualTimers(),
      storage: new MemoryStorage(),
    })
    await engine.openAt('group:g', 12)
    await settle()
    expect(state.active).toBe('group:g')
    expect(state.focus).toEqual({ conversation: 'group:g', seq: 12 })
    const log = state.logs['group:g']
    expect(log.oldest).toBeLessThanOrEqual(12)
    expect(log.items.map((item) => item.seq)).toEqual(Array.from({ length: 120 - (log.oldest as number) + 1 }, (_, i) => (log.oldest as number) + i))
  })
})
